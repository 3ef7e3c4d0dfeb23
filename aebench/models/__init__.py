"""The models: the interface (:mod:`aebench.models.base`), one file per model family, and registry access.

Importing this package imports every module in it (the one deliberate import side effect of aebench: each model
file registers its classes with ``@MODELS.register``), so adding a model never means editing a list. Third-party
packages add models through the entry-point group ``aebench.models``, loaded the first time the registry is used;
an entry point may name a module (imported for its registrations) or an ``AutoEncoder`` subclass (registered under
the entry point's name).
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

from aebench.models.base import MODELS, AutoEncoder

ENTRY_POINT_GROUP = "aebench.models"
_plugins_loaded = False

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def load_plugins() -> None:
    """Register the models of installed packages (entry-point group ``aebench.models``) once.

    The registry calls this itself before its first lookup; calling it again does nothing.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as err:  # a broken plugin must not hide the built-in models
            raise ImportError(
                f"The aebench.models entry point {ep.name!r} ({ep.value}) failed to import: {err}. "
                "Fix or uninstall the package that provides it."
            ) from err
        if isinstance(obj, type) and issubclass(obj, AutoEncoder) and obj not in dict(MODELS.items()).values():
            MODELS.add(ep.name, obj)


MODELS.load_before_first_use(load_plugins)


def create_model(name: str, **model_args: Any) -> AutoEncoder:
    """Build the registered model ``name`` with constructor arguments ``model_args``.

    Raises:
        KeyError: If ``name`` is not registered (the message lists close matches).
        TypeError: If an argument is not accepted by the model's constructor.
    """
    cls = MODELS[name]
    try:
        model = cls(**model_args)
    except TypeError as err:
        raise TypeError(f"Cannot build model {name!r} with arguments {sorted(model_args)}: {err}") from err
    model.registry_name = name
    model.model_args = dict(model_args)
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return MODELS.names(pattern)


__all__ = ["MODELS", "AutoEncoder", "create_model", "list_models", "load_plugins"]
