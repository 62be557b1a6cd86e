"""What every dataset recipe shares: the utterances found on disk, cutting long clips at word
boundaries, preparing (optionally one shard of) a dataset, merging shards, and statistics.

A recipe's ``discover(root, splits, options)`` returns a :class:`Discovery`: source files, each with
the utterances to store from it, plus the problems met while reading labels (a missing label file,
an empty transcript), which go to the summary as failures while the rest is prepared.

Output in ``OUT_DIR`` (the format ``avsr prepare manifest`` writes and training reads):
``features/<id>.npz``, ``<split>.jsonl`` (prepared manifests, sorted by id), ``prepare_summary.jsonl``
(one :class:`~avsr.io.results.FileResult` per utterance) and ``stats.json``. A run with ``--shard I/N`` prepares every
N-th source file and writes its manifests to ``shards/I-of-N/``; ``merge_shards`` then writes the
same files an unsharded run would.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from avsr.errors import AvsrError, OptionError
from avsr.data.manifest import read_jsonl, write_jsonl
from avsr.files import write_text_atomic
from avsr.data.tokenizer import CHARACTERS
from avsr.io.inputs import OutputError
from avsr.io.results import FileResult, Reason, Status
from avsr.preprocessing import VIDEO_FPS
from avsr.text import Word, normalise

if TYPE_CHECKING:  # the preparation itself (MediaPipe, PyAV) is imported where it runs
    from avsr.io.lip_roi import LipRoiOptions

PAUSE_MARGIN_S = 0.5  # silence kept on each side of a cut in a long pause


class RecipeError(AvsrError):
    """A dataset root that cannot be read as the recipe's layout (one line, naming the path)."""


@dataclass
class Utterance:
    """One utterance to store: ``start_s``/``end_s`` None for the whole source file."""

    id: str
    split: str
    text: str
    speaker: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass
class Source:
    """A media file (and, for GRID, its separate audio) with the utterances cut from it."""

    video: Path
    audio: Path | None
    utterances: list[Utterance]


@dataclass
class Discovery:
    sources: list[Source] = field(default_factory=list)
    problems: list[FileResult] = field(default_factory=list)  # failed, before any file is read

    def problem(self, id: str, path: Path, error: str, reason: Reason = Reason.BAD_LABEL) -> None:
        """Record that utterance ``id`` of ``path`` cannot be prepared: ``error`` says why and the fix."""
        self.problems.append(FileResult.failed(path, error, reason, id=id))

    def usable_text(self, id: str, path: Path, raw: str, where: str) -> str | None:
        """``raw`` in the model's alphabet (see :func:`clean_text`), or None after recording why it
        cannot be used (``"<reason> in <where>"``) as a problem."""
        text, reason = clean_text(raw)
        if reason:
            self.problem(id, path, f"{reason} in {where}")
            return None
        return text


def check_splits(dataset: str, splits: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = sorted(set(splits) - set(known))
    if unknown:
        raise RecipeError(f"{dataset} has no split {', '.join(unknown)}; use {', '.join(known)}")


def find_root(root: Path, holds: Callable[[Path], bool], what: str) -> Path:
    """``root``, or the first folder one level below it, for which ``holds`` is true (archives
    often unpack into a folder of their own); RecipeError naming ``what`` otherwise."""
    if holds(root):
        return root
    inner = [child for child in sorted(root.iterdir()) if child.is_dir() and holds(child)] if root.is_dir() else []
    if not inner:
        raise RecipeError(f"{root}: no {what} here or one level down; pass the dataset's root folder")
    return inner[0]


@dataclass(frozen=True)
class RecipeOptions:
    """``max_segment_s``: longer (pretrain) clips are cut at word boundaries into pieces of at
    most this length; ``labels``: the transcript CSV of recipes without label files (VoxCeleb2);
    ``grid_split``: ``unseen`` (speaker-disjoint) or ``overlapped`` (see the GRID recipe);
    ``val_ids``: LRS3 clips (``<speaker_id>/<nnnnn>`` per line, a leading ``trainval/`` allowed) moved
    from ``trainval`` to a ``val`` split, e.g. AV-HuBERT's ``lrs3-valid.id``."""

    max_segment_s: float = 15.0
    labels: str | None = None
    grid_split: str = "unseen"
    val_ids: str | None = None


def clean_text(text: str) -> tuple[str, str | None]:
    """Dataset text -> the tokenizer's alphabet (lower case, a-z, apostrophe, space): the text and
    None, or ``""`` and the reason it cannot be used. Bracketed markers (``{LG}``) are dropped."""
    text = normalise(re.sub(r"\{[^}]*\}|<[^>]*>", " ", text))
    if not text:
        return "", "empty transcript"
    bad = sorted(set(text) - set(CHARACTERS))
    if bad:
        return "", f"transcript has characters {''.join(bad)!r} outside a-z, apostrophe and space"
    return text, None


def segment_words(words: list[Word], max_s: float, duration_s: float) -> list[tuple[float, float, list[Word]]]:
    """Cut a clip into pieces of at most ``max_s`` seconds at word boundaries.

    Each cut lies in the middle of the pause between two words, so no word is split and the
    pieces follow one another without a gap; silence before the first word and after the last is
    kept up to ``max_s``; of a pause longer than ``2 * PAUSE_MARGIN_S`` between two pieces only
    the margins are kept. A single
    word longer than ``max_s`` forms its own, longer, piece.
    Returns ``(start_s, end_s, words)`` per piece.
    """
    if not words:
        return []
    pieces: list[list] = []
    start = max(0.0, min(words[0].start_s, words[0].end_s - max_s))
    current: list[Word] = []
    for word in words:
        if current and word.end_s - start > max_s:
            # Cut in the middle of the pause; of a long pause keep PAUSE_MARGIN_S on either side
            # (and never more than max_s in a piece) and leave the rest out.
            margin = min((word.start_s - current[-1].end_s) / 2, PAUSE_MARGIN_S)
            cut = min(current[-1].end_s + margin, start + max_s)
            pieces.append([start, cut, current])
            start, current = max(cut, word.start_s - margin), []
        current.append(word)
    end = max(min(duration_s, start + max_s), current[-1].end_s)
    pieces.append([start, end, current])
    return [(a, b, ws) for a, b, ws in pieces]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ValueError otherwise."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise OptionError(f"--shard {text!r}: use I/N with 0 <= I < N, e.g. 0/4")
    return int(match[1]), int(match[2])


def _relative_features(utterance_id: str) -> str:
    return f"features/{utterance_id}.npz"


def prepare_recipe(discovery: Discovery, out_dir: str | Path, lip_options: LipRoiOptions | None = None,
                   workers: int = 1, shard: tuple[int, int] | None = None,
                   progress: bool = True) -> tuple[dict, list[FileResult]]:
    """Prepare the discovered sources (every N-th one for ``shard=(I, N)``) and write the manifests,
    summary and statistics. Returns the statistics (see :func:`statistics`) and the summary."""
    from avsr.data.prepare import Piece, crashed_source, prepare_source
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.parallel import run_jobs

    lip_options = lip_options or LipRoiOptions()
    out_dir = Path(out_dir)
    sources = sorted(discovery.sources, key=lambda s: str(s.video))
    problems = discovery.problems
    if shard is not None:
        index, count = shard
        sources = sources[index::count]
        owner = _problem_shards(discovery, count)
        problems = [p for p in problems if owner[p.input] == index]
    target = out_dir if shard is None else out_dir / "shards" / f"{shard[0]}-of-{shard[1]}"
    splits = {u.split for source in sources for u in source.utterances} | {p.extra.get("split") for p in problems}
    _refuse_foreign_outputs(target, sorted(split for split in splits if split))
    jobs = []
    for source in sources:
        pieces = [Piece(u.id, out_dir / _relative_features(u.id),
                        0 if u.start_s is None else round(u.start_s * VIDEO_FPS),
                        None if u.end_s is None else round(u.end_s * VIDEO_FPS)) for u in source.utterances]
        jobs.append((source.video, source.audio, pieces, lip_options))
    results = run_jobs(prepare_source, jobs, workers, crashed_source, progress=progress, unit="file")
    records, summary = [], list(problems)
    for source, pieces in zip(sources, results):
        for utterance, result in zip(source.utterances, pieces):
            summary.append(replace(result, extra=result.extra | {"split": utterance.split}))
            if result.status is not Status.FAILED:
                records.append({"id": utterance.id, "text": utterance.text, "speaker": utterance.speaker,
                                "split": utterance.split, "features": _relative_features(utterance.id),
                                "num_frames": result.frames, "duration_s": result.frames / VIDEO_FPS,
                                "face_found_rate": round(result.face_found_rate, 4),
                                "source": str(source.video), "roi_style": lip_options.roi_style})
    return _write_outputs(target, out_dir, records, summary)


def _refuse_foreign_outputs(target: Path, splits: list[str]) -> None:
    """Refuse, before any work, a ``<split>.jsonl``, summary or stats.json in ``target`` that avsr prepare did
    not write (it would be replaced), and say to move it."""
    from avsr.data.prepare import refuse_foreign_outputs

    refuse_foreign_outputs([target / f"{split}.jsonl" for split in splits], target / "prepare_summary.jsonl", [])
    stats = target / "stats.json"
    try:
        ours = not stats.exists() or "splits" in json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        raise OutputError(f"{stats}: exists and was not written by avsr prepare; move it away, or choose another "
                          "OUT_DIR")


def _problem_shards(discovery: Discovery, count: int) -> dict[str, int]:
    """The shard that owns each problem file: every N-th of them in sorted order."""
    return {path: i % count for i, path in enumerate(sorted({p.input for p in discovery.problems}))}


def _write_outputs(target: Path, out_dir: Path, records: list[dict],
                   summary: list[FileResult]) -> tuple[dict, list[FileResult]]:
    from avsr.data.prepare import SUMMARY_KEYS

    target.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r["id"])
    summary = sorted(summary, key=lambda s: (s.id, s.input))
    splits = {r["split"] for r in records} | {s.extra["split"] for s in summary if s.extra.get("split")}
    from avsr.data.prepare import PREPARED_KEYS, jsonl_with

    for stale in target.glob("*.jsonl"):  # a split of an earlier run with other --splits (never a user's file)
        if stale.stem not in splits and stale.name != "prepare_summary.jsonl" and jsonl_with(stale, PREPARED_KEYS):
            stale.unlink()
    (target / "stats.json").unlink(missing_ok=True)  # written last: a shard without it is incomplete
    for split in sorted(splits):
        features = "" if target == out_dir else "../../"
        write_jsonl(target / f"{split}.jsonl",
                    [r | {"features": features + r["features"]} for r in records if r["split"] == split])
    write_jsonl(target / "prepare_summary.jsonl", [s.to_json(SUMMARY_KEYS) for s in summary])
    stats = statistics(records, summary)
    write_text_atomic(target / "stats.json", json.dumps(stats, indent=2) + "\n")
    return stats, summary


def statistics(records: list[dict], summary: list[FileResult]) -> dict:
    """Per split: utterances, hours, vocabulary (distinct words), face-found rate (over frames);
    and the failures by :class:`~avsr.io.results.Reason` (``unknown``: from a summary written
    before reasons were recorded)."""
    splits = {}
    for split in sorted({r["split"] for r in records}):
        rows = [r for r in records if r["split"] == split]
        frames = sum(r["num_frames"] for r in rows)
        found = sum(r["face_found_rate"] * r["num_frames"] for r in rows)
        splits[split] = {"utterances": len(rows), "hours": round(frames / VIDEO_FPS / 3600, 4),
                         "vocabulary": len({w for r in rows for w in r["text"].split()}),
                         "face_found_rate": round(found / frames, 4) if frames else 0.0}
    failed = [s for s in summary if s.status is Status.FAILED]
    reasons = Counter(str(s.reason or "unknown") for s in failed)
    return {"splits": splits, "failed": len(failed), "failures_by_reason": dict(reasons.most_common())}


def merge_shards(out_dir: str | Path) -> tuple[dict, list[FileResult]]:
    """Join ``OUT_DIR/shards/*-of-N`` into the files an unsharded run writes; refuses a missing or
    mixed set of shards, and a split manifest, summary or stats.json in OUT_DIR that avsr prepare did not
    write. Returns the statistics and the summary."""
    from avsr.data.prepare import SUMMARY_KEYS

    out_dir = Path(out_dir)
    folders = sorted(f for f in (out_dir / "shards").glob("*-of-*") if re.fullmatch(r"\d+-of-\d+", f.name))
    if not folders:
        raise RecipeError(f"{out_dir}: no shards/I-of-N folders; run avsr prepare RECIPE ... --shard I/N first")
    counts = {folder.name.split("-of-")[1] for folder in folders}
    if len(counts) != 1:
        raise RecipeError(f"{out_dir}/shards: shards of different counts ({', '.join(sorted(counts))}); remove "
                          "the stale ones")
    count = int(counts.pop())
    present = {int(folder.name.split("-of-")[0]) for folder in folders}
    missing = sorted(set(range(count)) - present)
    if missing:
        raise RecipeError(f"{out_dir}/shards: shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing; run "
                          "them before merging")
    unfinished = [folder.name for folder in folders if not (folder / "stats.json").is_file()]
    if unfinished:
        raise RecipeError(f"{out_dir}/shards: {', '.join(unfinished)} did not finish (no stats.json); run it again")
    records, summary = [], []
    for folder in folders:
        summary += [FileResult.from_json(s, SUMMARY_KEYS) for s in read_jsonl(folder / "prepare_summary.jsonl")]
        for manifest in sorted(folder.glob("*.jsonl")):
            if manifest.name != "prepare_summary.jsonl":
                records += [r | {"features": r["features"].removeprefix("../../")} for r in read_jsonl(manifest)]
    splits = {r["split"] for r in records} | {s.extra["split"] for s in summary if s.extra.get("split")}
    _refuse_foreign_outputs(out_dir, sorted(splits))
    return _write_outputs(out_dir, out_dir, records, summary)
