"""The ``avsr`` command. Each subcommand parses its arguments and calls one library function; the
subcommands are defined by the data flow's stages: :mod:`avsr.cli.data` (lip-roi, synth, prepare),
:mod:`avsr.cli.models` (export, evaluate) and :mod:`avsr.cli.transcribe` (transcribe, render, demo).
Nothing heavy (torch, mediapipe, lightning) is imported before a command runs: help and argument
errors answer at once (tested)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import traceback
import warnings

import avsr
from avsr.cli.common import OneLineParser, default_workers
from avsr.cli.data import add_lip_roi, add_prepare, add_synth
from avsr.cli.imports import add_import
from avsr.cli.models import add_evaluate, add_export
from avsr.cli.transcribe import TRANSCRIBE_WORKERS, add_demo, add_render, add_transcribe
from avsr.tmp import run_folder

__all__ = ["TRANSCRIBE_WORKERS", "build_parser", "default_workers", "main"]


def _one_line_warnings() -> None:
    """Each warning as ``warning: <message>`` on a line of its own: written through tqdm, a progress bar on the
    terminal is cleared first and drawn again below it, never glued to it."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm import tqdm

        tqdm.write(warnings.formatwarning(message, category, filename, lineno).rstrip("\n"), file=file or sys.stderr)

    warnings.showwarning = show


class Terminated(KeyboardInterrupt):
    """SIGTERM (containers, SLURM and systemd stop jobs with it), raised where Ctrl-C raises KeyboardInterrupt,
    so that it is handled alike: the summary finalised, the lock and temporary files removed."""


class _Stop:
    """SIGTERM while a command runs: :class:`Terminated` raised in the main thread, once. Later ones, and any
    after :meth:`disarm` (the command has ended and is cleaning up), are ignored, so that the clean-up is not cut
    short; SIGKILL ends a command at once. An interruption (SIGTERM or Ctrl-C) that lands in a finaliser (a
    ``__del__``, a weakref callback), where Python would print it with a traceback and drop it, is raised
    again in the main thread a moment later, outside it (:meth:`unraisable`)."""

    AGAIN_S = 0.05  # after this long the finaliser has returned

    def __init__(self) -> None:
        self.armed, self.raised, self.in_hook = True, False, False

    def terminate(self, signum, frame) -> None:
        if not self.armed or self.raised:
            return
        if self.in_hook:  # raised here, it would be dropped again
            self._again(signal.SIGTERM)
            return
        self.raised = True
        raise Terminated()

    def disarm(self) -> None:
        self.armed = False

    def unraisable(self, hook, unraisable) -> None:
        """``sys.unraisablehook``: a dropped interruption is raised again (:meth:`_again`); the rest go to ``hook``."""
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and self.armed):
            hook(unraisable)
            return
        self.in_hook = True
        try:
            if isinstance(unraisable.exc_value, Terminated):
                self.raised = False
            self._again(signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT)
        finally:
            self.in_hook = False

    def _again(self, signum: int) -> None:
        """The signal ``signum`` handled in the main thread again after :data:`AGAIN_S`, if still armed."""
        import _thread

        def again() -> None:
            if self.armed:
                _thread.interrupt_main(signum)

        timer = threading.Timer(self.AGAIN_S, again)
        timer.daemon = True
        timer.start()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` in the main thread for the block, as :class:`_Stop` says (the handler
    and ``sys.unraisablehook`` before are put back); the block gets the :class:`_Stop`."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    before, hook = signal.signal(signal.SIGTERM, stop.terminate), sys.unraisablehook
    sys.unraisablehook = lambda unraisable: stop.unraisable(hook, unraisable)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, before)
        sys.unraisablehook = hook


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="avsr", description="Audio-visual speech recognition toolkit.")
    parser.add_argument("--version", action="version", version=f"avsr {avsr.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_lip_roi(subparsers)
    add_synth(subparsers)
    add_prepare(subparsers)
    add_export(subparsers)
    add_import(subparsers)
    add_evaluate(subparsers)
    add_transcribe(subparsers)
    add_render(subparsers)
    add_demo(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``avsr`` command; its exit code.

    An :class:`~avsr.errors.AvsrError` is the user's to fix: one line on stderr and the error's exit code. A
    full disk or a vanished folder (``OSError``) is one line too, exit code 1. Anything else is a bug in avsr:
    its traceback is printed with a request to report it, exit code 1."""
    from avsr.errors import AvsrError

    _one_line_warnings()
    args = build_parser().parse_args(argv)
    from avsr.io.face_mesh import keep_python_stderr

    keep_python_stderr()  # MediaPipe's set-up lines are silenced on descriptor 2, not our messages
    command = args.command
    with _sigterm_as_interrupt() as stop:
        try:
            with run_folder():  # temporary files (the synthesiser's, ONNX Runtime's, spooled crops) go in one folder
                try:
                    return args.handler(args)
                finally:
                    stop.disarm()  # the command has ended: a SIGTERM now would cut its clean-up short
        except AvsrError as error:
            print(f"{command}: error: {error}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt as interrupt:
            how = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
            print(f"{command}: {how}; finished outputs are kept, and running the same command again resumes "
                  "where it stopped", file=sys.stderr)
            return 143 if isinstance(interrupt, Terminated) else 130
        except OSError as error:  # a full disk, a folder that vanished...
            where = f"{error.filename}: " if error.filename else ""
            print(f"{command}: error: {where}{error.strerror or error}; free space or fix the folder, then run the "
                  "same command again", file=sys.stderr)
            return 1
        except Exception:
            traceback.print_exc()
            print(f"{command}: internal error: this is a bug in avsr {avsr.__version__}; please report it with the "
                  "command and the traceback above", file=sys.stderr)
            return 1
