"""The project's one error model.

Every error a user can fix is an :class:`AvsrError` (or a subclass) whose message is one line naming
the file or option, the value and the fix. ``avsr``'s ``main`` prints it as
``avsr <command>: error: <message>`` and exits with its :attr:`~AvsrError.exit_code`; any other
exception is a bug, shown with its traceback and a request to report it.
"""

from __future__ import annotations

USAGE = 2
"""Exit code of an error in what the user asked for: an option, an input, a model file."""

FAILED = 1
"""Exit code of a run that went ahead but could not finish all of its work (a batch with failed files)."""


class AvsrError(Exception):
    """A problem the user can fix, told in one line. Subclasses name the kind (media, bundle, manifest...)."""

    exit_code: int = USAGE


class OptionError(AvsrError, ValueError):
    """An option's value outside its valid range (the message names the option, the value and the range).

    Also a :class:`ValueError`, which option dataclasses raised before this class existed."""
