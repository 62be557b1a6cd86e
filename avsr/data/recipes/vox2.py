"""VoxCeleb2: ``{dev,test}/mp4/<speaker_id>/<youtube_id>/<nnnnn>.mp4``. The dataset has no
transcripts, so they come from a label file (``RecipeOptions.labels``): one utterance per line,
``<path><TAB><text>`` or ``<path>,<text>``, the path relative to ROOT with or without ``.mp4``
(``dev/mp4/id00012/21Uxsk56VDQ/00001``); e.g. Whisper transcripts of the English subset as
auto_avsr and AV-HuBERT make them. Only videos with a line are prepared. Ids are the paths
without suffix; the split is the first folder (``dev`` or ``test``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from avsr.data.recipes.common import Discovery, RecipeError, RecipeOptions, Source, Utterance, check_splits
from avsr.io.results import Reason

SPLITS = ("dev", "test")


def read_labels(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, path without .mp4, text)`` per line of a VoxCeleb2 label file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: label file cannot be read ({error.__class__.__name__}); pass a UTF-8 text "
                          "file of '<path><TAB><text>' lines") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else next(csv.reader([line]))
        if len(fields) == 4 and fields[2].isdigit() and all(t.isdigit() for t in fields[3].split()):
            raise RecipeError(f"{path}:{number}: this is an auto_avsr label CSV (dataset,path,length,token ids); "
                              "its SentencePiece ids are not text — use the transcripts it was made from, as "
                              "'<path><TAB><text>' lines")
        if len(fields) < 2:
            raise RecipeError(f"{path}:{number}: expected '<path><TAB><text>' or '<path>,<text>'")
        if number == 1 and fields[0].strip().lower() in ("path", "file", "id", "rel_path"):
            continue  # a header line
        rows.append((number, fields[0].strip().removesuffix(".mp4"), ",".join(fields[1:]).strip()))
    return rows


def discover_vox2(root: str | Path, splits: tuple[str, ...] = SPLITS,
                  options: RecipeOptions = RecipeOptions()) -> Discovery:
    root = Path(root)
    if not options.labels:
        raise RecipeError("vox2: VoxCeleb2 has no transcripts; pass --labels FILE ('<path><TAB><text>' per line)")
    check_splits("VoxCeleb2", splits, SPLITS)
    if not root.is_dir():
        raise RecipeError(f"{root}: not a folder; pass the VoxCeleb2 root (holding dev/ and test/)")
    discovery = Discovery()
    seen = set()
    for number, name, raw in read_labels(Path(options.labels)):
        parts = Path(name).parts
        if not parts or parts[0] not in splits:
            continue
        if name in seen:
            discovery.problem(f"{name}#{number}", root / f"{name}.mp4",
                              f"labelled twice in {Path(options.labels).name} (line {number}); keep one line")
            continue
        seen.add(name)
        video = root / f"{name}.mp4"
        if not video.is_file():
            discovery.problem(name, video, f"labelled in {Path(options.labels).name} but missing under the root",
                              Reason.MISSING)
            continue
        text = discovery.usable_text(name, video, raw, Path(options.labels).name)
        if text is None:
            continue
        speaker = parts[2] if len(parts) > 3 else parts[0]
        discovery.sources.append(Source(video, None, [Utterance(name, parts[0], text, speaker)]))
    return discovery
