"""A small typed registry: the one extension mechanism of aebench.

Models, attack objectives, optimizers, metrics and datasets are registered under lower_snake names.
A duplicate name is an error, never a silent overwrite, because a benchmark that quietly shadows a
baseline reports the wrong model. An unknown name raises with the closest matches.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry lookup fails; the message lists close matches and all names."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0])


class Registry(Generic[T]):
    """A name → object mapping filled by a decorator.

    Args:
        kind: What the registry holds ("model", "attack", ...), used in error messages.
        loader: Called once, before the first lookup or listing, to register what lives outside the package
            (third-party entry points), so the registry is complete however it is reached.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def load_before_first_use(self, loader: Callable[[], None]) -> None:
        """Call ``loader`` once, before the next lookup or listing (e.g. to register third-party entry points)."""
        self._loader = loader

    def _load(self) -> None:
        loader, self._loader = self._loader, None  # cleared first: the loader itself registers through add()
        if loader is not None:
            loader()

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``.

        Raises:
            ValueError: If ``name`` is already registered or is not lower_snake.
        """

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        if not name or name != name.lower() or not name.replace("_", "").isalnum():
            raise ValueError(f"{self.kind} name {name!r} must be lower_snake (letters, digits, '_').")
        if name in self._items:
            raise ValueError(
                f"{self.kind} {name!r} is already registered by {_describe(self._items[name])}; "
                f"pick another name for {_describe(obj)}."
            )
        self._items[name] = obj

    def __getitem__(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``: close matches first, then every name."""
        close = difflib.get_close_matches(str(name), self._items, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._items))}."

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self._load()
        return len(self._items)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style ``pattern``."""
        self._load()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def items(self) -> list[tuple[str, T]]:
        """Sorted (name, object) pairs."""
        self._load()
        return sorted(self._items.items())


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    qualname = getattr(obj, "__qualname__", type(obj).__name__)
    return f"{module}.{qualname}"
