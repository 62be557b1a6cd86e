"""What a batch reports per input: one typed record (:class:`FileResult`), its failure reason from a
fixed set (:class:`Reason`) and the one formatter of a failure line (:func:`failure_message`).

``avsr lip-roi``, ``avsr prepare`` and ``avsr transcribe`` all return these records; the summary
files hold them as JSON lines (:meth:`FileResult.to_json`), which read back with
:meth:`FileResult.from_json`, so failures are counted by their reason, never by parsing messages.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any

from avsr.errors import FAILED, AvsrError


class Reason(StrEnum):
    """Why an input failed. Members are their JSON strings (``Reason.NO_VIDEO == "no_video"``)."""

    # The file as media (raised as MediaError).
    MISSING = "missing"  # no such file, or not a file
    EMPTY = "empty"  # 0 bytes, or no frames and no audio
    TOO_SHORT = "too_short"  # too short to hold a word
    NOT_MEDIA = "not_media"  # a text file
    CORRUPT = "corrupt"  # FFmpeg cannot open or decode it
    TRUNCATED = "truncated"  # its streams end well before its header says
    NO_STREAMS = "no_streams"  # neither audio nor video
    NO_VIDEO = "no_video"  # no video stream where one is needed
    NO_AUDIO = "no_audio"  # no audio stream where one is needed
    NO_FACE = "no_face"  # no face in any frame where the lips are needed
    # The batch around the file.
    BAD_LABEL = "bad_label"  # a label, transcript or cut that cannot be used (dataset recipes, pieces)
    OUTPUT_EXISTS = "output_exists"  # a file avsr did not write is where an output would go
    IO_ERROR = "io_error"  # the system refused a read or write (OSError): a full disk, a read-only folder
    INVALID = "invalid"  # a value the job cannot use (ValueError), e.g. a model that scores NaN
    CRASHED = "crashed"  # the worker process died on this file (a native fault in a decoder or MediaPipe)
    UNEXPECTED = "unexpected"  # any other exception: a bug in avsr, to be reported


MEDIA_REASONS = (Reason.MISSING, Reason.EMPTY, Reason.TOO_SHORT, Reason.NOT_MEDIA, Reason.CORRUPT, Reason.TRUNCATED,
                 Reason.NO_STREAMS, Reason.NO_VIDEO, Reason.NO_AUDIO, Reason.NO_FACE)


class Status(StrEnum):
    """What happened to an input of a batch."""

    DONE = "done"  # outputs written now
    SKIPPED = "skipped"  # outputs already current
    FAILED = "failed"  # see the reason and error


class FileError(AvsrError):
    """One input that cannot be used, for ``reason``; the message names the file and the fix. In a batch it fails
    that input alone; for a command that reads one input, the run failed (exit code 1)."""

    exit_code = FAILED

    def __init__(self, path: str | os.PathLike, reason: Reason | str, message: str) -> None:
        self.path = str(path)
        self.reason = Reason(reason)
        super().__init__(f"{self.path}: {message}")


def reason_of(error: BaseException) -> Reason:
    """The reason an exception fails an input: a :class:`FileError`'s own, else by its kind."""
    if isinstance(error, FileError):
        return error.reason
    if isinstance(error, OSError):
        return Reason.IO_ERROR
    if isinstance(error, ValueError):
        return Reason.INVALID
    return Reason.UNEXPECTED


def failure_message(path: str | os.PathLike, error: BaseException | str) -> str:
    """The one line a batch reports for a failed input: the message's first line, prefixed by
    ``path`` unless it already names it. An exception of an unexpected kind (a bug, not the file)
    keeps its class name and asks for a report."""
    if isinstance(error, OSError) and error.strerror:  # never a raw "[Errno 28] ..."
        where = f"{error.filename}: " if error.filename and str(error.filename) != str(path) else ""
        fix = ("give the input a shorter name" if error.errno == errno.ENAMETOOLONG
               else "free space or fix the folder, then run the same command again")
        error = f"{where}{error.strerror}; {fix}"
    text = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, BaseException) and reason_of(error) is Reason.UNEXPECTED:
        return f"{path}: {error.__class__.__name__}: {text}; please report this with the file"
    return text if str(path) in text else f"{path}: {text}"


CRASH_MESSAGE = "the worker process crashed on this file (a native fault in a decoder or MediaPipe); re-encode it"


@dataclass(frozen=True)
class FileResult:
    """What happened to one input of a batch.

    Attributes:
        input: the input file.
        status: done, skipped (outputs current) or failed.
        id: the utterance id (``avsr prepare``), else None.
        reason: why it failed (None unless failed, or in a summary written before reasons existed).
        error: the one-line failure message naming the file and the fix (from :func:`failure_message`).
        output: what was written (a file, or ``<stem>.*`` for several).
        frames: 25 fps frames of the output.
        face_found_rate: share of those frames with a face.
        seconds: wall time spent on this input.
        extra: job-specific fields, written as top-level JSON keys (transcribe's ``mode``,
            ``duration_s``, ``warnings``; prepare's ``split``).
    """

    input: str
    status: Status
    id: str | None = None
    reason: Reason | None = None
    error: str | None = None
    output: str | None = None
    frames: int | None = None
    face_found_rate: float | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", str(self.input))
        object.__setattr__(self, "status", Status(self.status))
        if self.reason is not None:
            object.__setattr__(self, "reason", Reason(self.reason))
        assert (self.status is Status.FAILED) == (self.error is not None), self

    @classmethod
    def failed(cls, path: str | os.PathLike, error: BaseException | str, reason: Reason | None = None,
               **values: Any) -> FileResult:
        """A failure: ``error`` is the exception (its reason from :func:`reason_of`) or a message
        with its ``reason``."""
        if reason is None:
            assert isinstance(error, BaseException), "a message needs its reason"
            reason = reason_of(error)
        return cls(str(path), Status.FAILED, reason=reason, error=failure_message(path, error), **values)

    @classmethod
    def crashed(cls, path: str | os.PathLike, **values: Any) -> FileResult:
        """The result of a job whose worker process died (see :func:`avsr.parallel.run_jobs`)."""
        return cls.failed(path, CRASH_MESSAGE, Reason.CRASHED, **values)

    def to_json(self, keys: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The summary line: the fields that are set, then ``extra``; ``keys`` renames fields (prepare
        writes ``input`` as ``video`` and ``frames`` as ``num_frames``)."""
        keys = keys or {}
        record = {}
        for name in _JSON_ORDER:
            value = getattr(self, name)
            if value is not None:
                record[keys.get(name, name)] = value.value if isinstance(value, Enum) else value
        return record | self.extra

    @classmethod
    def from_json(cls, record: Mapping[str, Any], keys: Mapping[str, str] | None = None) -> FileResult:
        """The inverse of :meth:`to_json` with the same ``keys``; other keys go to ``extra``."""
        keys = keys or {}
        names = {keys.get(name, name): name for name in _JSON_ORDER}
        values = {names[key]: value for key, value in record.items() if key in names}
        return cls(**values, extra={key: value for key, value in record.items() if key not in names})


_JSON_ORDER = ("id", "input", "status", "reason", "error", "output", "frames", "face_found_rate", "seconds")
assert set(_JSON_ORDER) == {f.name for f in fields(FileResult)} - {"extra"}
