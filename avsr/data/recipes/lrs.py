"""LRS2 and LRS3: clips of ``<group>/<nnnnn>.mp4`` beside ``.txt`` labels (``Text:`` line and,
where given, a ``WORD START END ASDSCORE`` table of word timings in seconds)."""

from __future__ import annotations

from pathlib import Path

from avsr.data.recipes.common import (Discovery, RecipeError, RecipeOptions, Source, Utterance, Word, check_splits,
                                      clean_text, find_root, segment_words)
from avsr.io.results import Reason

LRS2_SPLITS = ("pretrain", "train", "val", "test")
LRS3_SPLITS = ("pretrain", "trainval", "test")


def read_label(path: Path) -> tuple[str, list[Word]]:
    """The ``Text:`` line and the word timings of an LRS label file (ValueError if it has no text line)."""
    text, words, in_table = None, [], False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if line.startswith("Text:"):
            text = line[len("Text:"):].strip()
        elif fields[:3] == ["WORD", "START", "END"]:
            in_table = True
        elif in_table and len(fields) >= 3:
            words.append(Word(fields[0], float(fields[1]), float(fields[2])))
    if text is None:
        raise ValueError("has no 'Text:' line; is it an LRS label file?")
    return text, words


def clip_utterances(video: Path, clip_id: str, split: str, speaker: str, discovery: Discovery,
                    options: RecipeOptions) -> None:
    """The utterances of one clip (a pretrain clip is cut at word boundaries when its words run
    past ``options.max_segment_s``), added to ``discovery``; a missing or bad label is a problem."""
    label = video.with_suffix(".txt")
    if not label.is_file():
        discovery.problem(clip_id, video, f"label file {label.name} is missing; restore it from the dataset archive")
        return
    try:
        raw, words = read_label(label)
    except (OSError, ValueError) as error:
        discovery.problem(clip_id, video, f"{label.name} {error}")
        return
    text = discovery.usable_text(clip_id, video, raw, label.name)
    if text is None:
        return
    if split != "pretrain" or not words or words[-1].end_s <= options.max_segment_s:
        discovery.sources.append(Source(video, None, [Utterance(clip_id, split, text, speaker)]))
        return
    utterances = []
    for index, (start, end, piece) in enumerate(segment_words(words, options.max_segment_s, float("inf"))):
        piece_id = f"{clip_id}_{index:02d}"
        piece_text, reason = clean_text(" ".join(w.text for w in piece))
        if reason == "empty transcript":  # only bracketed markers ({LG}): no speech to learn from
            continue
        if reason:
            discovery.problem(piece_id, video, f"{reason} in {label.name}")
            continue
        utterances.append(Utterance(piece_id, split, piece_text, speaker, start, end))
    if utterances:
        discovery.sources.append(Source(video, None, utterances))


def _base(root: Path, marker: str) -> Path:
    """``root``, or the folder one level down that holds ``marker/`` (LRS2 unpacks into ``mvlrs_v1``)."""
    return find_root(root, lambda folder: (folder / marker).is_dir(), f"{marker}/ folder")


def discover_lrs2(root: str | Path, splits: tuple[str, ...] = LRS2_SPLITS,
                  options: RecipeOptions = RecipeOptions()) -> Discovery:
    """LRS2 (``mvlrs_v1``): ``main/`` and ``pretrain/`` hold ``<video_id>/<nnnnn>.mp4|.txt``; the split
    lists ``pretrain.txt``, ``train.txt``, ``val.txt`` and ``test.txt`` (beside ``main/`` or one level
    up) name one clip per line as ``<video_id>/<nnnnn>`` (anything after it on the line is ignored).
    Ids: ``main/<video_id>/<nnnnn>``, ``pretrain/<video_id>/<nnnnn>[_kk]``."""
    root = Path(root)
    base = _base(root, "pretrain" if set(splits) == {"pretrain"} else "main")
    discovery = Discovery()
    check_splits("LRS2", splits, LRS2_SPLITS)
    for split in splits:
        lists = [folder / f"{split}.txt" for folder in (base, base.parent) if (folder / f"{split}.txt").is_file()]
        if not lists:
            raise RecipeError(f"{base}: split list {split}.txt not found here or one level up; it comes with LRS2")
        folder = "pretrain" if split == "pretrain" else "main"
        for line in lists[0].read_text().splitlines():
            if not line.strip():
                continue
            name = line.split()[0]
            video = base / folder / f"{name}.mp4"
            clip_id = f"{folder}/{name}"
            if not video.is_file():
                discovery.problem(clip_id, video, f"listed in {split}.txt but missing; restore it from the archive",
                                  Reason.MISSING)
                continue
            clip_utterances(video, clip_id, split, name.split("/")[0], discovery, options)
    return discovery


def discover_lrs3(root: str | Path, splits: tuple[str, ...] = LRS3_SPLITS,
                  options: RecipeOptions = RecipeOptions()) -> Discovery:
    """LRS3: ``pretrain/``, ``trainval/`` and ``test/`` hold ``<speaker_id>/<nnnnn>.mp4|.txt``; the folder is
    the split, except that clips named in ``options.val_ids`` go to ``val``. Ids:
    ``<split>/<speaker_id>/<nnnnn>[_kk]`` (``trainval/...`` also for the val clips)."""
    root = Path(root)
    discovery = Discovery()
    val = set()
    if options.val_ids:
        try:
            lines = Path(options.val_ids).read_text().split()
        except OSError as error:
            raise RecipeError(f"{options.val_ids}: cannot read the validation id list ({error.strerror})") from None
        val = {"/".join(line.split("/")[-2:]) for line in lines}
    check_splits("LRS3", splits, LRS3_SPLITS)
    for split in splits:
        folder = _base(root, split) / split
        for video in sorted(folder.glob("*/*.mp4")):
            in_val = split == "trainval" and f"{video.parent.name}/{video.stem}" in val
            clip_utterances(video, f"{split}/{video.parent.name}/{video.stem}", "val" if in_val else split,
                            video.parent.name, discovery, options)
        for label in sorted(folder.glob("*/*.txt")):
            if not label.with_suffix(".mp4").is_file():
                discovery.problem(f"{split}/{label.parent.name}/{label.stem}", label.with_suffix(".mp4"),
                                  "has a label but no video; restore the .mp4 from the archive", Reason.MISSING)
    return discovery
