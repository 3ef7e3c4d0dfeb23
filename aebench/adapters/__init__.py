"""Import adapters: checkpoints of other code bases turned into aebench models, with where they came from.

One module per source format, each registered in :data:`ADAPTERS` with a function
``convert(source, *, model, dataset, data_root, **options) -> Imported``:

- ``authors``: the state dicts the authors' Robust_GMM_DAE and GMM_DAE code saves (:mod:`aebench.adapters.authors`);
- ``pythae``: a pythae model folder (:mod:`aebench.adapters.pythae`);
- ``state_dict``: any network from its ``module:factory`` and a weights file (:mod:`aebench.adapters.state_dict`).

The result is an ordinary aebench model, saved as a self-describing safetensors checkpoint whose metadata (and so
every row computed from it) records the source format, path and SHA-256. A suite names a foreign checkpoint as
``checkpoint: {format: pythae, path: ...}``; ``aebench import`` converts one once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Each adapter module registers its format in ADAPTERS when imported (the only reason they are imported here).
from aebench.adapters import authors, pythae, state_dict  # noqa: F401
from aebench.adapters._base import ADAPTERS, ForeignCheckpointError, Imported, source_record
from aebench.checkpoint import save_checkpoint

__all__ = ["ADAPTERS", "ForeignCheckpointError", "Imported", "import_checkpoint", "rebuildable", "save_imported",
           "source_record"]


def import_checkpoint(fmt: str, source: str | Path, *, model: str | None, dataset: str,
                      data_root: str | None = None, **options: Any) -> Imported:
    """Convert a foreign checkpoint with the adapter of ``fmt``.

    Raises:
        aebench.registry.UnknownNameError: For an unknown format (with close matches).
        ForeignCheckpointError: When the checkpoint does not fit (the message lists the keys or files involved).
    """
    return ADAPTERS[fmt](Path(source), model=model, dataset=dataset, data_root=data_root, **options)


def rebuildable(model: Any) -> bool:
    """Whether a converted model is a registered one, which an aebench checkpoint can rebuild without pickle."""
    from aebench.models import list_models

    return getattr(model, "registry_name", None) in list_models()


def save_imported(imported: Imported, output: str | Path, dataset: str) -> Path:
    """Write an imported model as an aebench checkpoint that records its source."""
    return save_checkpoint(output, imported.model, dataset=dataset, seed=None, source=imported.source)
