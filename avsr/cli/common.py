"""What the ``avsr`` subcommands share: the parser that reports in one line, argument types, worker
counts, the device check and a batch's report."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from avsr.errors import OptionError
from avsr.parallel import usable_cores

if TYPE_CHECKING:
    from avsr.io.results import FileResult

WORKERS_HELP = "parallel worker processes (default: one per CPU core, at most one per input)"


def default_workers(asked: int | None, inputs: int | None = None) -> int:
    """``--workers`` as given, else one per CPU core this process may use (at most one per input: a
    single file is prepared in this process, without starting a worker)."""
    if asked is not None:
        return asked
    cores = usable_cores()
    return max(1, min(cores, inputs or cores))


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (``avsr transcribe: error: ...``) with exit code 2, no usage dump. The parsed
    namespace's ``command`` is the deepest (sub)command's name, ``avsr prepare manifest``, for error lines."""

    def parse_known_args(self, args=None, namespace=None):
        namespace = namespace if namespace is not None else argparse.Namespace()
        namespace.command = self.prog  # a subcommand's parser runs later and overwrites it with its own name
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _whole_number(text: str, minimum: int) -> int:
    """A whole number >= ``minimum``, or an argparse error saying what is wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must lie between 0 and 1")
    return value


def check_device(device: str) -> str:
    """``device`` if this machine has it; otherwise a ValueError naming what it has."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise OptionError(f"--device {device}: not a device name; use cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: this machine has no CUDA GPU (or torch has no CUDA); use --device cpu")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise OptionError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0")
    return device


def report(summary: list[FileResult], done_word: str, target: str, current: str = "current") -> int:
    """Print each failure and a count line for a batch's :class:`~avsr.io.results.FileResult` list;
    the exit code."""
    from avsr.io.results import Status

    failed = [r for r in summary if r.status is Status.FAILED]
    for result in failed:
        print(f"failed: {result.error}", file=sys.stderr)
    done = sum(r.status is Status.DONE for r in summary)
    skipped = sum(r.status is Status.SKIPPED for r in summary)
    print(f"{done} {done_word}, {skipped} skipped ({current}), {len(failed)} failed -> {target}")
    return 1 if failed else 0


def usage_error(command: str, message: object) -> int:
    """Print ``<command>: error: <message>`` on stderr, in one line; the exit code of a usage error (2)."""
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2
