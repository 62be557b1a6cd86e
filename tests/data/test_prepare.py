"""Preparing manifests and recipes from files that are not video: each utterance fails with its
reason, in the summary file and in the statistics."""

from __future__ import annotations

import json
from pathlib import Path

from avsr.data.manifest import read_jsonl
from avsr.data.prepare import SUMMARY_KEYS, Piece, crashed_source, prepare_manifest
from avsr.data.recipes.common import Discovery, Source, Utterance, prepare_recipe, statistics
from avsr.io.lip_roi import LipRoiOptions
from avsr.io.results import FileResult, Reason, Status


def bad_files(folder: Path) -> tuple[Path, Path]:
    """An empty file and a text file, both named .mp4."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("a text file renamed .mp4\n")
    return folder / "empty.mp4", folder / "notes.mp4"


def test_manifest_summary_records_the_reason_of_each_bad_file(tmp_path):
    empty, notes = bad_files(tmp_path / "in")
    manifest = tmp_path / "in" / "test.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "video": v, "text": "hello"}) + "\n"
                                for i, v in (("e", "empty.mp4"), ("t", "notes.mp4"), ("m", "gone.mp4"))))
    target, summary = prepare_manifest(manifest, tmp_path / "out", progress=False)
    assert [(r.id, r.status, r.reason) for r in summary] == [("e", Status.FAILED, Reason.EMPTY),
                                                            ("t", Status.FAILED, Reason.NOT_MEDIA),
                                                            ("m", Status.FAILED, Reason.MISSING)]
    lines = read_jsonl(tmp_path / "out" / "prepare_summary.jsonl")
    assert lines[0] == {"id": "e", "video": str(empty), "status": "failed", "reason": "empty",
                        "error": f"{empty}: file is empty (0 bytes); re-export or re-download it"}
    assert lines[1]["reason"] == "not_media" and lines[1]["error"].startswith(f"{notes}: is a text file")
    assert [FileResult.from_json(line, SUMMARY_KEYS) for line in lines] == summary
    assert target.read_text() == ""  # nothing usable to train on


def test_recipe_statistics_count_failures_by_their_reason(tmp_path):
    empty, notes = bad_files(tmp_path / "in")
    other_empty = tmp_path / "in" / "empty2.mp4"
    other_empty.write_bytes(b"")
    discovery = Discovery(sources=[Source(path, None, [Utterance(f"test/{path.stem}", "test", "hello", "spk")])
                                   for path in (empty, notes, other_empty)])
    discovery.problem("test/label", tmp_path / "in" / "label.mp4", "empty transcript in label.txt")
    stats, _ = prepare_recipe(discovery, tmp_path / "out", LipRoiOptions(), progress=False)
    expected = {"empty": 2, "not_media": 1, "bad_label": 1}
    assert stats["failed"] == 4 and stats["failures_by_reason"] == expected and stats["splits"] == {}
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["failures_by_reason"] == expected
    lines = {s["id"]: s for s in read_jsonl(tmp_path / "out" / "prepare_summary.jsonl")}
    assert lines["test/notes"]["reason"] == "not_media" and lines["test/notes"]["split"] == "test"
    assert lines["test/label"]["reason"] == "bad_label"
    assert lines["test/label"]["error"] == f"{tmp_path / 'in' / 'label.mp4'}: empty transcript in label.txt"


def test_statistics_of_summaries_written_before_reasons_existed():
    old = FileResult.from_json({"id": "u", "video": "a.mp4", "status": "failed", "error": "a.mp4: broken"},
                               SUMMARY_KEYS)
    assert statistics([], [old])["failures_by_reason"] == {"unknown": 1}


def test_a_crashed_worker_fails_every_piece_of_its_file(tmp_path):
    pieces = [Piece("a", tmp_path / "a.npz"), Piece("b", tmp_path / "b.npz", 25, 50)]
    results = crashed_source((tmp_path / "v.mp4", None, pieces, LipRoiOptions()))
    assert [(r.id, r.reason) for r in results] == [("a", Reason.CRASHED), ("b", Reason.CRASHED)]
