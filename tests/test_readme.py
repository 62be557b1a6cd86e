"""README.md's commands run as written: every ```bash block, in order, in a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Not run, each for one reason: CI (.ci/run) has already run the install line into the venv under test,
# and the test commands run this very file (running them from inside it would recurse).
NOT_RUN = {
    'pip install -e ".[dev,onnx]"': "the install, which CI has run",
    "python -m pytest": "the default suite, which holds this test",
    "python -m pytest --slow": "the full suite, which holds this test",
}


def blocks(text: str, language: str = "bash") -> list[str]:
    """The bodies of the fenced blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def runnable(block: str) -> str:
    """``block`` without the lines of :data:`NOT_RUN`."""
    return "\n".join(line for line in block.splitlines() if line.strip() not in NOT_RUN)


def repository_copy(dest: Path) -> Path:
    """The files a fresh clone of the working tree has (tracked, and new files git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not in a clone of it either
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_readme_skips_only_the_install_and_the_test_commands():
    bash = blocks(README.read_text())
    skipped = [line.strip() for block in bash for line in block.splitlines() if line.strip() in NOT_RUN]
    assert sorted(skipped) == sorted(NOT_RUN), skipped
    assert sum(bool(runnable(block).strip()) for block in bash) >= 8


def test_readme_is_short_and_names_no_file_outside_the_repository():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    assert not [line for line in lines if "../" in line]
    for target in re.findall(r"\]\(([^)#]+)", README.read_text()):  # every link to a file resolves
        assert target.startswith("http") or (ROOT / target).exists(), target


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to copy the repository as a clone has it")
    work = repository_copy(tmp_path / "clone")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for number, block in enumerate(blocks(README.read_text()), 1):
        script = runnable(block)
        if not script.strip():
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README block {number} exited {done.returncode}:\n{script}\n{done.stderr[-4000:]}"
    for code in blocks(README.read_text(), "python"):  # the Python example reads what the commands made
        done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"README's Python example failed:\n{done.stderr[-4000:]}"
    assert (work / "transcripts" / "s05_00004.srt").read_text().strip()  # the output the README shows
    assert (work / "sweep" / "results.csv").stat().st_size > 0
    assert (work / "rendered.mp4").stat().st_size > 0
