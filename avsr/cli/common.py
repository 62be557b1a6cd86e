"""What the ``avsr`` subcommands share: the parser that reports in one line, argument types, worker
counts, the device check and a batch's report."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import TYPE_CHECKING

from avsr.errors import OptionError
from avsr.io.roi_options import LipRoiOptions
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
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        unknown = [arg for arg in extras if arg.startswith("-") and arg != "-"]
        if unknown and not self._subparsers:  # the command's own parser, which knows its options, says it
            self.error(f"unrecognized option {unknown[0]}{self._hint(unknown[0])}")
        return namespace, extras

    def _hint(self, given: str) -> str:
        """How to fix an option that is none: the nearest option's name (difflib, as argparse does from Python
        3.14), or ``--`` before a file whose name starts with a dash."""
        import difflib
        from pathlib import Path

        name = given.split("=", 1)[0]
        if "." in name or Path(given).exists():
            return f" (a file named {given}? put -- before it: {self.prog} -- {given})"
        options = [option for action in self._actions for option in action.option_strings if option.startswith("--")]
        nearest = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        return f" (did you mean {nearest[0]}?)" if nearest else ""

    def error(self, message: str):
        dashed = [arg for arg in getattr(self, "_given", []) if arg.startswith("-") and arg != "-"
                  and ("." in arg or os.path.exists(arg))]
        if dashed and message.startswith("the following arguments are required"):
            message += f" ({dashed[0]} was read as an option: put -- before a file whose name starts with a dash, " \
                       f"{self.prog} -- {dashed[0]})"
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


class Number:
    """An argparse type for a number option: a finite number (a whole one for ``int``) from ``minimum`` to
    ``maximum`` (past ``minimum`` only, with ``above``), or one of the ``words`` (text -> its value). Anything
    else, ``nan``, ``inf`` and ``1e300`` included, is refused up front as ``argument --option: <value>: use <the
    range>``: every numeric option of every command says its valid range (tests/test_reliability_options.py walks
    the parsers)."""

    def __init__(self, kind: type, minimum: float, maximum: float, words: dict[str, object] | None = None, *,
                 above: bool = False, unit: str = "") -> None:
        self.kind, self.minimum, self.maximum, self.above = kind, minimum, maximum, above
        self.words, self.unit = dict(words or {}), unit
        self.__name__ = "number"  # argparse names the type in some of its messages

    def describe(self) -> str:
        """The valid values in words: ``a whole number from 1 to 100``."""
        what = "a whole number" if self.kind is int else "a number"
        low, high = (f"{int(x)}" if self.kind is int and math.isfinite(x) else f"{x:g}"
                     for x in (self.minimum, self.maximum))
        text = f"{what} {'above' if self.above else 'from'} {low} {'and below' if self.above else 'to'} {high}{self.unit}"
        return text + "".join(f", or {word}" for word in self.words)

    def __call__(self, text: str):
        if text in self.words:
            return self.words[text]
        try:
            value = self.kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r}: use {self.describe()}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text}: use {self.describe()}")
        low_ok = value > self.minimum if self.above else value >= self.minimum
        high_ok = value < self.maximum if self.above else value <= self.maximum
        if not (low_ok and high_ok):
            raise argparse.ArgumentTypeError(f"{text}: out of range; use {self.describe()}")
        return value


MAX_WORKERS = 256  # worker processes: more than any machine's cores, fewer than would exhaust its memory
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit numbers

WORKERS = Number(int, 1, MAX_WORKERS)
SEED = Number(int, 0, MAX_SEED)
# A stride longer than the gap the face track bridges would call every frame between detections faceless.
DETECT_EVERY_K = Number(int, 1, LipRoiOptions.max_gap_frames + 1)


PROBABILITY = Number(float, 0.0, 1.0, above=True)


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
