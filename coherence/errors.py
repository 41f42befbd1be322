"""The one exception family of coherence.

Every error a user can cause (bad input, bad options, missing weights) is a :class:`CoherenceError`
subclass whose message is one sentence a user understands; the CLI prints it as a single line and exits
non-zero.
"""

from __future__ import annotations


class CoherenceError(Exception):
    """Base class of every error coherence raises on purpose."""

    exit_code: int = 1


class InputError(CoherenceError):
    """The input (file, folder, tensor) is missing, empty, corrupt or of a form we cannot use."""

    exit_code = 2


class OutputError(CoherenceError):
    """The output cannot be written (unwritable folder, same path as the input, encoder failure)."""

    exit_code = 3


class ConfigError(CoherenceError):
    """An option or a combination of options is invalid."""

    exit_code = 4


class DependencyError(CoherenceError):
    """An optional dependency or a weights file needed for the request is not available."""

    exit_code = 5
