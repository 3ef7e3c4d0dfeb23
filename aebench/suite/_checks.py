"""The small checks every part of suite validation shares: collected problems, "did you mean", typed values."""

from __future__ import annotations

import difflib
from typing import Any

from aebench.suite.types import SuiteError


class Problems:
    """Collects validation problems so the user sees all of them at once."""

    def __init__(self, path: str) -> None:
        self.path, self.items = path, []

    def add(self, key: str, message: str) -> None:
        """Record one problem at ``key``."""
        self.items.append(f"  - {key}: {message}")

    def raise_if_any(self) -> None:
        """Raise one :class:`SuiteError` listing every problem, if there are any."""
        if self.items:
            raise SuiteError(f"{self.path}: {len(self.items)} problem(s):\n" + "\n".join(self.items))


def did_you_mean(value: Any, choices: list[str]) -> str:
    """`` Did you mean 'x'? Known: ...`` for an unknown name."""
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Known: {', '.join(sorted(choices))}."


def _check_keys(raw: dict, allowed: set[str], where: str, problems: Problems) -> None:
    for key in raw:
        if key not in allowed:
            problems.add(f"{where}{key}", f"unknown key.{did_you_mean(key, sorted(allowed))}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(raw: dict, key: str, default: Any, problems: Problems, where: str = "", minimum: int = 1) -> Any:
    value = raw.get(key, default)
    if value is default:
        return value
    if not _is_int(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        problems.add(f"{where}{key}", f"must be {kind}, got {value!r}.")
        return default
    return value


def _string(raw: dict, key: str, default: Any, problems: Problems, where: str = "") -> Any:
    value = raw.get(key, default)
    if value is not default and not isinstance(value, str):
        problems.add(f"{where}{key}", f"must be a string, got {value!r}.")
        return default
    return value


def _nonempty_list(raw: dict, key: str, problems: Problems, default: list | None = None) -> list:
    """``raw[key]`` when it is a non-empty list, else [] with the problem recorded."""
    value = raw.get(key, default)
    if value is None:
        problems.add(key, "is required and must be a non-empty list.")
        return []
    if not isinstance(value, list) or not value:
        problems.add(key, f"must be a non-empty list, got {value!r}.")
        return []
    return value


def _names(raw: dict, key: str, problems: Problems, default: list | None = None) -> list[str]:
    """A non-empty list of strings (names), reporting entries that are not strings."""
    value = _nonempty_list(raw, key, problems, default)
    names = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            names.append(item)
        else:
            problems.add(f"{key}[{i}]", f"must be a name (a string), got {item!r}.")
    return names


def _named_entries(raw: dict, key: str, allowed: set[str], problems: Problems) -> list[tuple[str, dict]]:
    """The entries of a list of names or ``{name: ..., ...}`` mappings, as (location, mapping) pairs."""
    value = _nonempty_list(raw, key, problems)
    entries = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.add(where, f"must be a {key[:-1]} name or a mapping with a string 'name', got {entry!r}.")
            continue
        _check_keys(entry, allowed, f"{where}.", problems)
        entries.append((where, entry))
    return entries


