"""One temporary folder per run of a command, removed when the run ends and swept by the next run after a kill.

The speech synthesiser copies its library into a temporary folder, long inputs spool their crops and audio to
temporary files, and ONNX Runtime (the voice activity detector) writes a ``.ses`` file into ``TMPDIR`` when it is
imported. :func:`run_folder` puts all of them, and those of child processes, under
``<tempfile.gettempdir()>/avsr-<pid>-<random>``: it sets ``TMPDIR`` and :data:`tempfile.tempdir` to the folder
for the block (ONNX Runtime reads ``TMPDIR`` when it is imported, so the block must start before that import)
and removes it at the block's end (Ctrl-C and SIGTERM included; at exit too, should the block be left by
another way). A run killed with SIGKILL cannot remove its folder: the next run removes every ``avsr-*``
folder whose owner is gone, as told by the marker file inside it (the owner's pid and its start time, so that a
recycled pid is not taken for the owner). The ``avsr`` command and ``train.py`` run in one; a program that
imports avsr is not affected unless it uses :func:`run_folder` itself.

A leaf of the package: it imports nothing from ``avsr``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = ".avsr-run"  # "<pid> <start time>" of the run that owns the folder
FOLDER = re.compile(r"avsr-(\d+)-[A-Za-z0-9_]+")
_active: Path | None = None  # the run folder this process is in (run_folder nests into it)


def start_time(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks after boot, /proc/<pid>/stat field 22), "" where there is
    no /proc; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else ("" if _alive(pid) else None)
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # after the command name, which may hold spaces and ')'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def owner_gone(folder: Path) -> bool:
    """Whether the run that made ``folder`` (an ``avsr-<pid>-*`` folder) has ended: its pid is not running, or is
    running a process started at another time than the marker says."""
    match = FOLDER.fullmatch(folder.name)
    if not match:
        return False
    try:
        pid, started = (folder / MARKER).read_text().split()
    except FileNotFoundError:  # killed before the marker was written (or being made now): the pid in its name
        return start_time(int(match.group(1))) is None
    except (OSError, ValueError):
        return False
    now = start_time(int(pid))
    return now is None or (started not in ("", "-") and now not in ("", started))


def sweep(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove the run folders in ``parent`` (default: the temporary directory) whose runs ended without removing
    them (killed); the folders removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith("avsr-") and FOLDER.fullmatch(p.name)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():  # another user's
                continue
        except OSError:
            continue
        if owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def run_folder() -> Iterator[Path]:
    """This run's temporary folder for the block (see the module's notes); runs that ended without removing
    theirs are swept first. Within a block already open in this process, the same folder."""
    global _active
    if _active is not None:
        yield _active
        return
    sweep()
    pid = os.getpid()
    folder = Path(tempfile.mkdtemp(prefix=f"avsr-{pid}-"))
    (folder / MARKER).write_text(f"{pid} {start_time(pid) or '-'}\n")
    before = os.environ.get("TMPDIR"), tempfile.tempdir

    def remove() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)  # should the block be left without its end running (os._exit excepted)
    os.environ["TMPDIR"], tempfile.tempdir, _active = str(folder), str(folder), folder
    try:
        yield folder
    finally:
        if before[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[0]
        tempfile.tempdir, _active = before[1], None
        remove()
        atexit.unregister(remove)
