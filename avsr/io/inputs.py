"""Turn command-line inputs (files, folders, globs, @lists) into a list of media files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .mov .avi .mkv .mpg .mpeg .webm .m4v .flv .wmv .ts .wav .flac .mp3 .m4a .ogg .opus .aac".split()
)


def expand_inputs(inputs: list[str], extensions: frozenset[str] = MEDIA_EXTENSIONS) -> list[Path]:
    """Expand files, folders (recursively, media extensions only), glob patterns and ``@list.txt``.

    A file named directly is kept whatever its extension (reading it will say if it is not media);
    a name that matches nothing is kept too, so that the caller reports it as missing. Order is
    preserved and duplicates are dropped.
    """
    found: list[Path] = []
    for item in inputs:
        if item.startswith("@"):
            lines = Path(item[1:]).read_text().splitlines()
            found += expand_inputs([line.strip() for line in lines if line.strip() and not line.startswith("#")],
                                   extensions)
        elif Path(item).is_dir():
            found += sorted(p for p in Path(item).rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        elif not Path(item).exists() and glob.has_magic(item):
            found += [Path(p) for p in sorted(glob.glob(item, recursive=True)) if Path(p).is_file()]
        else:
            found.append(Path(item))
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


class OutputError(ValueError):
    """An output that would replace one of the command's own inputs."""


def _identity(path: Path) -> tuple:
    """What makes two names the same file: device and inode when it exists, else the resolved path."""
    try:
        status = path.stat()
        return ("inode", status.st_dev, status.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def check_outputs_spare_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike],
                               option: str = "-o") -> None:
    """Refuse, before anything is written, an output that is (or links to) one of the inputs.

    Raises:
        OutputError: naming the output, the input it would replace, and the fix.
    """
    taken = {}
    for path in map(Path, inputs):
        taken.setdefault(_identity(path), path)
        taken.setdefault(("path", str(path.resolve())), path)
    for output in map(Path, outputs):
        for key in {_identity(output), ("path", str(output.resolve()))}:
            if key in taken:
                raise OutputError(f"{output}: is the input {taken[key]}; writing it would destroy the input: choose "
                                  f"another {option}")
