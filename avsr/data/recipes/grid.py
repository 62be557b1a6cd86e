"""GRID: 34 speakers x 1000 six-word commands; per speaker ``sN`` a folder of ``.mpg`` videos,
word alignments (``.align``: ``start end word`` per line) and separate ``.wav`` audio.

The archives unpack in more than one way, so files are matched by speaker and name wherever they
lie under ROOT: the speaker is the nearest enclosing folder named ``s<number>``, the name is the
sentence code (``bbaf2n``). Silence tokens (``sil``, ``sp``) are dropped from the text.

Splits (``RecipeOptions.grid_split``):
- ``unseen`` (speaker-disjoint): speakers s1, s2, s20 and s22 are the test set, as in LipNet
  (Assael et al., 2016, "unseen speakers"); the rest train.
- ``overlapped``: 255 sentences of every speaker are the test set (LipNet's "overlapped speakers"),
  chosen by a fixed hash of the id so that every run picks the same ones; the rest train.
In both, every 20th training utterance (by the same hash) is held out as ``val``.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from pathlib import Path

from avsr.data.recipes.common import Discovery, RecipeError, RecipeOptions, Source, Utterance, check_splits

UNSEEN_TEST_SPEAKERS = ("s1", "s2", "s20", "s22")
OVERLAPPED_TEST_PER_SPEAKER = 255
SILENCE = {"sil", "sp"}
SPLITS = ("train", "val", "test")


def speaker_of(path: Path) -> str | None:
    """The nearest enclosing folder named ``s<number>`` (``s1``), or None."""
    for parent in path.parents:
        if re.fullmatch(r"s\d+", parent.name):
            return parent.name
    return None


def read_align(path: Path) -> str:
    """The words of a GRID ``.align`` file without silences, joined by spaces."""
    words = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise ValueError(f"line {number} is not 'start end word'")
        if fields[2] not in SILENCE:
            words.append(fields[2])
    return " ".join(words)


def _rank(utterance_id: str) -> int:
    return zlib.crc32(utterance_id.encode())


def discover_grid(root: str | Path, splits: tuple[str, ...] = SPLITS,
                  options: RecipeOptions = RecipeOptions()) -> Discovery:
    root = Path(root)
    if options.grid_split not in ("unseen", "overlapped"):
        raise RecipeError(f"--grid-split {options.grid_split!r}: use unseen or overlapped")
    check_splits("GRID", splits, SPLITS)
    index: dict[str, dict[tuple[str, str], Path]] = {".mpg": {}, ".align": {}, ".wav": {}}
    for suffix, found in index.items():
        for path in sorted(root.rglob(f"*{suffix}")):
            speaker = speaker_of(path.relative_to(root))
            if speaker is not None:
                found.setdefault((speaker, path.stem), path)
    if not index[".mpg"]:
        raise RecipeError(f"{root}: no .mpg videos in s<N> folders; pass the folder the GRID archives unpack into")
    discovery = Discovery()
    by_speaker: dict[str, list[Source]] = defaultdict(list)  # splits are assigned per speaker below
    for (speaker, stem), video in sorted(index[".mpg"].items()):
        utterance_id = f"{speaker}/{stem}"
        align = index[".align"].get((speaker, stem))
        if align is None:
            discovery.problem(utterance_id, video, f"alignment {stem}.align of speaker {speaker} is missing; unpack "
                              "the alignments archive under the same root")
            continue
        try:
            raw = read_align(align)
        except (OSError, ValueError) as error:
            discovery.problem(utterance_id, video, f"{align.name} {error}")
            continue
        text = discovery.usable_text(utterance_id, video, raw, align.name)
        if text is not None:
            by_speaker[speaker].append(Source(video, index[".wav"].get((speaker, stem)),
                                              [Utterance(utterance_id, "", text, speaker)]))
    for speaker, sources in by_speaker.items():
        ids = [source.utterances[0].id for source in sources]
        if options.grid_split == "unseen":
            test = set(ids) if speaker in UNSEEN_TEST_SPEAKERS else set()
        else:
            test = set(sorted(ids, key=_rank)[:OVERLAPPED_TEST_PER_SPEAKER])
        for source in sources:
            utterance = source.utterances[0]
            utterance.split = "test" if utterance.id in test else "val" if _rank(utterance.id) % 20 == 0 else "train"
            if utterance.split in splits:
                discovery.sources.append(source)
    return discovery
