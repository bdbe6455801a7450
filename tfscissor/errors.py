"""Exceptions a user can act on.

The CLI prints any :class:`TfscissorError` as one line (no traceback unless ``--debug``) and exits with its
``exit_code``: 2 for a malformed request (a bad option value or spec string), 1 for a failure while
carrying out a well-formed one (a corrupt file, data that does not fit the model).
"""


class TfscissorError(Exception):
    """Base of every error that tfscissor raises for the user to fix."""

    exit_code = 1


class UsageError(TfscissorError, ValueError):
    """The request itself is malformed: an unknown data spec, a bad option value, an output that is an input."""

    exit_code = 2


class DataError(TfscissorError):
    """Data cannot be read or does not have the expected form."""


class ModelError(TfscissorError):
    """A model file is missing, corrupt, unsafe to load, or does not fit the data."""
