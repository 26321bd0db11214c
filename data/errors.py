"""The one error type of the data layer, and the h5py failures we turn into it.

Every dataset or cache problem reaches the user as a single `DatasetError` line naming the file,
the episode and the key; h5py's own tracebacks are caught (`H5_ERRORS`) and cut to `first_line`.
"""

from __future__ import annotations

from worldmodel.common.errors import UserError

# What h5py raises on damaged files, besides our own checks.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


class DatasetError(UserError):
    """A dataset problem, as one line naming the file, the episode and the key."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type name if it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
