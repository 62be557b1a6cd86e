"""``avsr demo``: synthetic clips made and transcribed by the embedded model (avsr.inference.demo)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import AVSR


@pytest.mark.slow
def test_demo_synthesizes_and_transcribes(tmp_path):
    result = subprocess.run([AVSR, "demo", "-o", str(tmp_path / "demo"), "--clips", "3", "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("truth:") == 3 and result.stdout.count("transcript:") == 3
    assert "WER" in result.stdout
    summary = (tmp_path / "demo" / "transcripts" / "transcribe_summary.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in summary] == ["done"] * 3
    assert len(list((tmp_path / "demo" / "transcripts").glob("*.srt"))) == 3
