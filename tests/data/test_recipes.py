"""Dataset recipes on fixture trees in each dataset's published layout, built from synthetic clips."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from avsr.data.manifest import read_jsonl
from avsr.data.recipes import RECIPES, RecipeOptions, prepare_recipe
from avsr.data.recipes.common import Word, segment_words
from avsr.io.lip_roi import LipRoiOptions
from avsr.io.media import load_media
from avsr.io.writer import write_video

AVSR = str(Path(sys.executable).with_name("avsr"))
FAST = LipRoiOptions(detect_every=3)


@pytest.fixture(scope="module")
def clips(synth_corpus) -> list[dict]:
    """Eight synthetic utterances of the shared test corpus (the first two of each of four speakers): video,
    audio, text and word timings."""
    out = []
    chosen = [c for c in synth_corpus.first(12) if c["speaker"] in ("s01", "s02", "s04", "s05")]
    for clip in sorted(chosen, key=lambda c: c["id"]):
        media = load_media(clip["video"])
        out.append({"frames": media.video, "audio": media.audio, "text": clip["text"],
                    "words": [Word(w["text"], w["start_s"], w["end_s"]) for w in clip["words"]]})
    return out


def lrs_label(text: str, words: list[Word] | None = None) -> str:
    label = f"Text:  {text.upper()}\nConf:  4\n"
    if words is not None:
        label += "\nWORD START END ASDSCORE\n" + "".join(f"{w.text.upper()} {w.start_s:.2f} {w.end_s:.2f} 5.1\n"
                                                         for w in words)
    return label


def joined(clips: list[dict]) -> dict:
    """Several clips one after another: a long 'pretrain' clip with its word timings."""
    offset, words = 0.0, []
    for clip in clips:
        words += [Word(w.text, w.start_s + offset, w.end_s + offset) for w in clip["words"]]
        offset += len(clip["frames"]) / 25
    return {"frames": np.concatenate([c["frames"] for c in clips]), "audio": np.concatenate([c["audio"] for c in clips]),
            "text": " ".join(c["text"] for c in clips), "words": words}


def write_clip(path: Path, clip: dict, label: str | None = None, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, clip["frames"], audio=clip.get("audio"), **kwargs)
    if label is not None:
        path.with_suffix(".txt").write_text(label)


def make_lrs3(root: Path, clips: list[dict]) -> dict:
    """pretrain/ (one long clip), trainval/ (3 clips, two speakers), test/ (1 clip). Returns id -> text."""
    long = joined(clips[4:7])
    write_clip(root / "pretrain" / "spkP" / "00001.mp4", long, lrs_label(long["text"], long["words"]))
    expected = {}
    for index, clip in enumerate(clips[:3]):
        path = root / "trainval" / f"spk{index % 2}" / f"5000{index + 1}.mp4"
        write_clip(path, clip, lrs_label(clip["text"], clip["words"]))
        expected[f"trainval/spk{index % 2}/5000{index + 1}"] = clip["text"]
    write_clip(root / "test" / "spkT" / "00001.mp4", clips[3], lrs_label(clips[3]["text"], clips[3]["words"]))
    expected["test/spkT/00001"] = clips[3]["text"]
    return expected


def prepared(out: Path) -> dict[str, dict]:
    return {r["id"]: r for manifest in sorted(out.glob("*.jsonl")) if manifest.name != "prepare_summary.jsonl"
            for r in read_jsonl(manifest)}


def test_segment_words_cuts_between_words_and_keeps_pieces_short():
    words = [Word(f"w{i}", 0.3 + 0.5 * i, 0.6 + 0.5 * i) for i in range(20)]  # 0.3-10.1 s
    pieces = segment_words(words, 3.0, 11.0)
    assert [w for _, _, ws in pieces for w in ws] == words
    for (a, b, ws), (c, _, next_words) in zip(pieces, pieces[1:]):
        assert b == c and ws[-1].end_s <= b <= next_words[0].start_s
    assert all(b - a <= 3.0 for a, b, _ in pieces) and pieces[0][0] == 0.0 and pieces[-1][1] <= 11.0
    assert segment_words([Word("long", 1.0, 5.0)], 3.0, 6.0) == [(1.0, 5.0, [Word("long", 1.0, 5.0)])]
    # A long pause: half a second of it is kept on each side and no piece runs past max_s.
    words = [Word("a", 0.0, 1.0), Word("b", 2.0, 2.5), Word("c", 9.0, 9.5)]
    assert segment_words(words, 3.0, 10.0) == [(0.0, 3.0, words[:2]), (8.5, 10.0, words[2:])]


def test_lrs3_tree_prepares_with_ids_texts_splits_durations_and_cut_pretrain(clips, tmp_path):
    expected = make_lrs3(tmp_path / "lrs3", clips)
    (tmp_path / "valid.id").write_text("trainval/spk1/50002\n")
    discovery = RECIPES["lrs3"][0](tmp_path / "lrs3", ("pretrain", "trainval", "test"),
                                   RecipeOptions(max_segment_s=3.0, val_ids=str(tmp_path / "valid.id")))
    stats, summary = prepare_recipe(discovery, tmp_path / "out", FAST, progress=False)
    assert all(s.status == "done" for s in summary)
    records = prepared(tmp_path / "out")
    for utterance_id, text in expected.items():
        split = "val" if utterance_id == "trainval/spk1/50002" else utterance_id.split("/")[0]
        assert records[utterance_id]["text"] == text and records[utterance_id]["split"] == split
    for index, clip in enumerate(clips[:4]):
        record = records[list(expected)[index]]
        assert abs(record["num_frames"] - len(clip["frames"])) <= 1 and record["duration_s"] == record["num_frames"] / 25
    # The 6-second pretrain clip: pieces of at most 3 s, cut between words, the words all kept in order.
    long = joined(clips[4:7])
    pieces = sorted((r for r in records.values() if r["split"] == "pretrain"), key=lambda r: r["id"])
    assert len(pieces) >= 2 and [r["id"] for r in pieces][0] == "pretrain/spkP/00001_00"
    assert " ".join(r["text"] for r in pieces) == long["text"]
    assert all(r["num_frames"] <= 3.0 * 25 + 1 for r in pieces)
    cuts = np.cumsum([r["num_frames"] for r in pieces])[:-1] / 25
    for cut in cuts:  # no word straddles a cut (within a frame)
        assert not any(w.start_s < cut - 0.04 and w.end_s > cut + 0.04 for w in long["words"])
    assert stats["splits"]["trainval"]["utterances"] == 2 and stats["splits"]["trainval"]["vocabulary"] > 6
    assert (tmp_path / "out" / "val.jsonl").is_file()
    assert stats["splits"]["test"]["face_found_rate"] > 0.9


def test_lrs2_tree_uses_the_split_lists(clips, tmp_path):
    base = tmp_path / "lrs2" / "mvlrs_v1"
    lists = {"train": [], "val": [], "test": [], "pretrain": []}
    for index, clip in enumerate(clips[:4]):
        name = f"600000000000000000{index % 2}/0000{index + 1}"
        write_clip(base / "main" / f"{name}.mp4", clip, lrs_label(clip["text"]))
        lists[("train", "train", "val", "test")[index]].append(name + (" NF" if index == 3 else ""))
    long = joined(clips[4:6])
    write_clip(base / "pretrain" / "6000000000000000009" / "00001.mp4", long, lrs_label(long["text"], long["words"]))
    lists["pretrain"].append("6000000000000000009/00001")
    for split, names in lists.items():
        (tmp_path / "lrs2" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    discovery = RECIPES["lrs2"][0](tmp_path / "lrs2", ("pretrain", "train", "val", "test"), RecipeOptions())
    _, summary = prepare_recipe(discovery, tmp_path / "out", FAST, progress=False)
    assert all(s.status == "done" for s in summary)
    records = prepared(tmp_path / "out")
    assert {r["id"]: r["split"] for r in records.values()} == {
        "main/6000000000000000000/00001": "train", "main/6000000000000000001/00002": "train",
        "main/6000000000000000000/00003": "val", "main/6000000000000000001/00004": "test",
        "pretrain/6000000000000000009/00001": "pretrain"}
    assert records["main/6000000000000000001/00004"]["text"] == clips[3]["text"]
    assert records["pretrain/6000000000000000009/00001"]["text"] == long["text"]  # under 15 s: not cut


def test_grid_tree_mpg_50khz_wav_and_alignments_without_silence(clips, tmp_path):
    root = tmp_path / "grid"
    expected = {}
    for index, clip in enumerate(clips[:4]):
        speaker, stem = ("s1", "s3", "s3", "s5")[index], f"bbaf{index}n"
        write_clip(root / speaker / f"{stem}.mpg", clip)  # the mpg's own audio is ignored: the wav is used
        (root / "audio_50k" / speaker).mkdir(parents=True, exist_ok=True)
        write_video(root / "audio_50k" / speaker / f"{stem}.wav", None, sample_rate=50_000, audio_codec="pcm_s16le",
                    audio=resample_poly(clip["audio"], 25, 8).astype(np.float32))
        lines = ["0 7000 sil"]
        for n, word in enumerate(clip["words"]):
            lines.append(f"{round(word.start_s * 25000)} {round(word.end_s * 25000)} {word.text}")
            if n == 2:
                lines.append(f"{round(word.end_s * 25000)} {round(word.end_s * 25000) + 500} sp")
        lines.append(f"{round(clip['words'][-1].end_s * 25000)} {len(clip['frames']) * 1000} sil")
        (root / "alignments" / speaker).mkdir(parents=True, exist_ok=True)
        (root / "alignments" / speaker / f"{stem}.align").write_text("\n".join(lines) + "\n")
        expected[f"{speaker}/{stem}"] = clip["text"]
    discovery = RECIPES["grid"][0](root, ("train", "val", "test"), RecipeOptions())
    assert all(s.audio is not None and s.audio.suffix == ".wav" for s in discovery.sources)
    _, summary = prepare_recipe(discovery, tmp_path / "out", FAST, progress=False)
    assert all(s.status == "done" for s in summary)
    records = prepared(tmp_path / "out")
    assert {k: r["text"] for k, r in records.items()} == expected
    assert all("sil" not in r["text"].split() and "sp" not in r["text"].split() for r in records.values())
    assert records["s1/bbaf0n"]["split"] == "test" and records["s3/bbaf1n"]["split"] in ("train", "val")
    assert records["s3/bbaf1n"]["speaker"] == "s3"


def test_lrw_tree_single_words(clips, tmp_path):
    root = tmp_path / "lipread_mp4"
    for index, (split, clip) in enumerate(zip(("train", "train", "val", "test"), clips[:4])):
        word = clip["words"][1]
        first = max(0, round((word.start_s + word.end_s) / 2 * 25) - 14)
        piece = {"frames": clip["frames"][first:first + 29], "audio": clip["audio"][first * 640:(first + 29) * 640]}
        name = word.text.upper()
        write_clip(root / name / split / f"{name}_0000{index + 1}.mp4", piece,
                   f"Text: {name}\nConf: 5\n\nDuration: {word.end_s - word.start_s:.2f} seconds\n")
    # A label naming another word than its folder is reported, not trusted.
    write_clip(root / "ABOUT" / "test" / "ABOUT_00001.mp4", piece, "Text: AROUND\n")
    _, summary = prepare_recipe(RECIPES["lrw"][0](tmp_path, ("train", "val", "test"), RecipeOptions()),
                                tmp_path / "out", FAST, progress=False)
    assert [(s.id, s.reason) for s in summary if s.status == "failed"] == [("test/ABOUT_00001", "bad_label")]
    assert "'AROUND'" in summary[0].error
    records = prepared(tmp_path / "out")
    assert len(records) == 4 and all(len(r["text"].split()) == 1 and r["num_frames"] == 29 for r in records.values())
    assert sorted(r["split"] for r in records.values()) == ["test", "train", "train", "val"]
    assert records[f"val/{clips[2]['words'][1].text.upper()}_00003"]["text"] == clips[2]["words"][1].text


@pytest.mark.slow
def test_vox2_tree_with_a_label_file(clips, tmp_path):
    root = tmp_path / "vox2"
    lines = []
    for index, clip in enumerate(clips[:3]):
        name = f"{('dev', 'dev', 'test')[index]}/mp4/id0000{index}/yt{index}/0000{index + 1}"
        write_clip(root / f"{name}.mp4", clip)
        lines.append(f"{name}.mp4\t{clip['text'].upper()}")
    lines.append("dev/mp4/id00009/gone/00001\tnot on disk")
    lines.append(lines[0].replace(".mp4", ""))  # the same utterance labelled twice
    (tmp_path / "labels.tsv").write_text("\n".join(lines) + "\n")
    result = subprocess.run([AVSR, "prepare", "vox2", str(root), str(tmp_path / "out"), "--labels",
                             str(tmp_path / "labels.tsv"), "--detect-every", "3", "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "gone/00001" in result.stderr  # the missing video is reported
    assert "labelled twice" in result.stderr
    records = prepared(tmp_path / "out")
    assert {k: r["split"] for k, r in records.items()} == {"dev/mp4/id00000/yt0/00001": "dev",
                                                          "dev/mp4/id00001/yt1/00002": "dev",
                                                          "test/mp4/id00002/yt2/00003": "test"}
    assert records["dev/mp4/id00001/yt1/00002"]["text"] == clips[1]["text"]
    assert records["dev/mp4/id00001/yt1/00002"]["speaker"] == "id00001"


def prepare_cli(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, "prepare", "lrs3", str(root), str(out), "--max-segment-s", "3", "--detect-every",
                           "3", "--quiet", *extra], capture_output=True, text=True, timeout=600)


def digest(out: Path) -> dict[str, str]:
    """Every manifest, the statistics and every feature file (its arrays) by content."""
    names = [p for p in sorted(out.rglob("*")) if p.is_file() and "shards" not in p.parts
             and p.name != "prepare_summary.jsonl"]
    contents = {}
    for path in names:
        if path.suffix == ".npz":
            with np.load(path) as data:
                contents[str(path.relative_to(out))] = hashlib.sha256(b"".join(
                    data[k].tobytes() for k in sorted(data.files))).hexdigest()
        else:
            contents[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return contents


@pytest.mark.slow
def test_shards_then_merge_equal_one_run_and_bad_inputs_are_listed(clips, tmp_path):
    root = tmp_path / "lrs3"
    make_lrs3(root, clips)
    (root / "trainval" / "spk1" / "50002.txt").unlink()  # a missing label
    (root / "test" / "spkX").mkdir()
    (root / "test" / "spkX" / "00001.mp4").write_text("not a video")  # an unreadable video
    (root / "test" / "spkX" / "00001.txt").write_text(lrs_label("hello there"))
    write_clip(root / "test" / "spkX" / "00002.mp4", clips[7], "Text:  {LG}\nConf:  1\n")  # an empty transcript

    whole = prepare_cli(root, tmp_path / "whole")
    assert whole.returncode == 1, whole.stderr[-2000:]
    summary = {s["id"]: s for s in read_jsonl(tmp_path / "whole" / "prepare_summary.jsonl")}
    assert "missing" in summary["trainval/spk1/50002"]["error"]
    assert summary["trainval/spk1/50002"]["reason"] == "bad_label"  # the label is missing, not the video
    assert summary["test/spkX/00001"]["status"] == "failed" and "00001.mp4" in summary["test/spkX/00001"]["error"]
    assert summary["test/spkX/00001"]["reason"] == "not_media"
    assert "empty transcript" in summary["test/spkX/00002"]["error"]
    assert summary["test/spkX/00002"]["reason"] == "bad_label"
    assert sum(s["status"] == "done" for s in summary.values()) == len(prepared(tmp_path / "whole")) >= 4
    assert all("reason" not in s for s in summary.values() if s["status"] == "done")
    stats = json.loads((tmp_path / "whole" / "stats.json").read_text())
    assert stats["failed"] == 3 and stats["failures_by_reason"] == {"bad_label": 2, "not_media": 1}

    for index in range(2):
        assert prepare_cli(root, tmp_path / "sharded", "--shard", f"{index}/2").returncode in (0, 1)
    stats = tmp_path / "sharded" / "shards" / "1-of-2" / "stats.json"
    kept = stats.read_bytes()
    stats.unlink()  # as if shard 1 had been killed before it finished
    refused = subprocess.run([AVSR, "prepare", "merge", str(tmp_path / "sharded")], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and "1-of-2 did not finish" in refused.stderr
    stats.write_bytes(kept)
    (tmp_path / "sharded" / "test.jsonl").write_text("mine\n")  # a user's file where the merge writes
    refused = subprocess.run([AVSR, "prepare", "merge", str(tmp_path / "sharded")], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and "test.jsonl" in refused.stderr and "not written by avsr prepare" in refused.stderr
    assert (tmp_path / "sharded" / "test.jsonl").read_text() == "mine\n"
    (tmp_path / "sharded" / "test.jsonl").unlink()
    merged = subprocess.run([AVSR, "prepare", "merge", str(tmp_path / "sharded")], capture_output=True, text=True,
                            timeout=300)
    assert merged.returncode == 0, merged.stderr
    assert digest(tmp_path / "sharded") == digest(tmp_path / "whole")
    strip = lambda path: [{k: v for k, v in s.items() if k not in ("seconds", "status")} for s in read_jsonl(path)]
    assert strip(tmp_path / "sharded" / "prepare_summary.jsonl") == strip(tmp_path / "whole" / "prepare_summary.jsonl")

    again = prepare_cli(root, tmp_path / "whole")  # resumable: nothing is redone
    assert "0 done" in again.stdout and digest(tmp_path / "whole") == digest(tmp_path / "sharded")
