"""The one exception type of the data package."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file is missing, truncated or corrupt, or a dataset request is invalid.

    The message always names the file (or every path searched) and says how to fix the problem, because the
    person reading it is usually at a terminal with a half-downloaded folder, not in a debugger.
    """
