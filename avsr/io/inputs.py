"""Turn command-line inputs (files, folders, globs, @lists) into a list of media files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from avsr.errors import AvsrError

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .mov .avi .mkv .mpg .mpeg .webm .m4v .flv .wmv .ts .wav .flac .mp3 .m4a .ogg .opus .aac".split()
)


class InputListError(AvsrError, ValueError):
    """An ``@list`` file that cannot be read as a list of inputs."""


def _read_list(path: Path, reading: tuple[Path, ...]) -> list[str]:
    if not path.exists():
        raise InputListError(f"@{path}: list file not found; check the path (one input per line)")
    if path.is_dir():
        raise InputListError(f"@{path}: is a folder, not a list file; pass the folder without @ to take its media")
    if path.resolve() in reading:
        raise InputListError(f"@{path}: includes itself (through {' -> '.join(str(p) for p in reading)}); remove "
                             "the loop")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputListError(f"@{path}: is not UTF-8 text; a list file holds one input path per line") from None
    except OSError as error:
        raise InputListError(f"@{path}: cannot be read ({error.strerror}); check its permissions") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def expand_inputs(inputs: list[str], extensions: frozenset[str] = MEDIA_EXTENSIONS,
                  _reading: tuple[Path, ...] = ()) -> list[Path]:
    """Expand files, folders (recursively, media extensions only), glob patterns and ``@list.txt``.

    A file named directly is kept whatever its extension (reading it will say if it is not media);
    a name that matches nothing is kept too, so that the caller reports it as missing. Order is
    preserved and duplicates are dropped.

    Raises:
        InputListError: an ``@list`` that is missing, a folder, not UTF-8, or includes itself.
    """
    found: list[Path] = []
    for item in inputs:
        if item.startswith("@"):
            path = Path(item[1:])
            lines = _read_list(path, _reading)
            found += expand_inputs(lines, extensions, _reading + (path.resolve(),))
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


class OutputError(AvsrError, ValueError):
    """An output that would replace one of the command's own inputs, or a folder that cannot take outputs."""


def ensure_output_dir(path: str | os.PathLike, option: str = "-o") -> Path:
    """Create ``path`` (and its parents) as a writable folder, or raise :class:`OutputError` saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: {option} is a file, not a folder; name a folder for the outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{path}: {option} lies under a file, not a folder; name a folder for the outputs") from None
    except OSError as error:
        raise OutputError(f"{path}: {option} cannot be created ({error.strerror}); choose another folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: {option} is not writable; choose another folder or fix its permissions")
    return path


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
