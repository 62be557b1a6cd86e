"""LRW (``lipread_mp4``): 500 words, ``<WORD>/{train,val,test}/<WORD>_<nnnnn>.mp4`` (29 frames,
1.16 s, the word in the middle) with a ``.txt`` beside each clip (its ``Duration:`` line gives the
word's length). The transcript is the folder's word, as the dataset's own tooling reads it; a
``.txt`` whose ``Text:`` line names another word is reported. Ids: ``<split>/<WORD>_<nnnnn>`` (clip
numbers repeat across splits)."""

from __future__ import annotations

from pathlib import Path

from avsr.data.recipes.common import Discovery, RecipeError, RecipeOptions, Source, Utterance, clean_text
from avsr.data.recipes.lrs import read_label

SPLITS = ("train", "val", "test")


def discover_lrw(root: str | Path, splits: tuple[str, ...] = SPLITS,
                 options: RecipeOptions = RecipeOptions()) -> Discovery:
    root = Path(root)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise RecipeError(f"LRW has no split {', '.join(unknown)}; use {', '.join(SPLITS)}")
    if not any(any(root.glob(f"*/{split}")) for split in SPLITS):
        inner = [child for child in sorted(root.iterdir()) if any(child.glob("*/train"))] if root.is_dir() else []
        if not inner:
            raise RecipeError(f"{root}: no <WORD>/train|val|test folders here or one level down (lipread_mp4)")
        root = inner[0]
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
