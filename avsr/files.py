"""Files written whole or not at all, content hashes, and output names: helpers every stage uses.

A leaf of the package: it imports nothing from ``avsr``.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME_MAX = 255  # bytes in one file name: ext4, XFS, btrfs, tmpfs (os.pathconf PC_NAME_MAX)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` (``.<name>.tmp<suffix>``, so writers that go by the suffix
    still work) to write to; renamed onto ``path`` when the block succeeds, removed when anything
    fails (a full disk, Ctrl-C): ``path`` is never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if len(tmp.name.encode()) > NAME_MAX:  # a name near the file system's limit: a shorter temporary one
        tmp = path.with_name(f".{hashlib.sha256(path.name.encode()).hexdigest()[:16]}.tmp{path.suffix[:16]}")
    try:
        yield tmp
    except OSError as error:  # a full disk fails a write with no file name: the message names the file
        tmp.unlink(missing_ok=True)
        if error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def name_too_long(path: str | os.PathLike) -> str | None:
    """Why the file name of ``path`` cannot be made (longer than the file system allows), or None."""
    size = len(Path(path).name.encode())
    if size <= NAME_MAX:
        return None
    return (f"its output name {Path(path).name[:40]}... is {size} bytes, past the file system's limit of {NAME_MAX}; "
            "give the input a shorter name")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: str | os.PathLike, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def output_names(paths: list[Path]) -> list[str]:
    """``<stem>`` per input; inputs sharing a stem get ``<stem>-<hash of the path>``."""
    counts = Counter(p.stem for p in paths)
    return [p.stem if counts[p.stem] == 1 else f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
            for p in paths]
