"""Model registry access: ``create_model``, ``list_models`` and plugin loading.

Every module in this package is a model file; :func:`load_plugins` imports them all (the one
deliberate import side effect of aebench: each module registers its classes with
``@MODELS.register``), so adding a model never means editing a list. Third-party packages add
models through the entry-point group ``aebench.models``; an entry point may name a module (imported
for its registrations) or an ``AutoEncoder`` subclass (registered under the entry point's name).
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

from aebench.model import MODELS, AutoEncoder
ENTRY_POINT_GROUP = "aebench.models"
_plugins_loaded = False


def load_plugins() -> None:
    """Import built-in models and third-party entry points once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
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


def create_model(name: str, **model_args: Any) -> AutoEncoder:
    """Build the registered model ``name`` with constructor arguments ``model_args``.

    Raises:
        KeyError: If ``name`` is not registered (the message lists close matches).
        TypeError: If an argument is not accepted by the model's constructor.
    """
    load_plugins()
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
    load_plugins()
    return MODELS.names(pattern)


__all__ = ["MODELS", "AutoEncoder", "create_model", "list_models", "load_plugins"]
