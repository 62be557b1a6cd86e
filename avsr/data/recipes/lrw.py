"""LRW (``lipread_mp4``): 500 words, ``<WORD>/{train,val,test}/<WORD>_<nnnnn>.mp4`` (29 frames,
1.16 s, the word in the middle) with a ``.txt`` beside each clip (its ``Duration:`` line gives the
word's length). The transcript is the folder's word, as the dataset's own tooling reads it; a
``.txt`` whose ``Text:`` line names another word is reported. Ids: ``<split>/<WORD>_<nnnnn>`` (clip
numbers repeat across splits)."""

from __future__ import annotations

from pathlib import Path

from avsr.data.recipes.common import (Discovery, RecipeOptions, Source, Utterance, check_splits, clean_text,
                                      find_root)
from avsr.data.recipes.lrs import read_label

SPLITS = ("train", "val", "test")


def discover_lrw(root: str | Path, splits: tuple[str, ...] = SPLITS,
                 options: RecipeOptions = RecipeOptions()) -> Discovery:
    check_splits("LRW", splits, SPLITS)
    root = find_root(Path(root), lambda folder: any(any(folder.glob(f"*/{split}")) for split in SPLITS),
                     "<WORD>/train|val|test folders (lipread_mp4)")
    discovery = Discovery()
    for split in splits:
        for video in sorted(root.glob(f"*/{split}/*.mp4")):
            utterance_id = f"{split}/{video.stem}"
            text, reason = clean_text(video.parent.parent.name)
            label = video.with_suffix(".txt")
            if not reason and label.is_file():
                try:
                    written, _ = read_label(label)
                except (OSError, ValueError):
                    written = None  # no Text: line; the folder names the word
                if written is not None and clean_text(written)[0] != text:
                    reason = f"{label.name} says {written!r}, the folder {video.parent.parent.name!r}"
            if reason:
                discovery.problem(utterance_id, video, reason)
                continue
            # LRW names no speakers; each clip is its own group (babble then draws from any other clip).
            discovery.sources.append(Source(video, None, [Utterance(utterance_id, split, text, utterance_id)]))
    return discovery
