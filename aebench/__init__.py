"""aebench: an adversarial-robustness benchmark harness for autoencoders.

``aebench.benchmark(model, dataset, ...)`` runs the suite protocol on any model object (:mod:`aebench.api`).
"""

from typing import Any

from aebench.models import MODELS, AutoEncoder, create_model, list_models

__version__ = "0.1.0"
__all__ = ["MODELS", "AutoEncoder", "__version__", "benchmark", "create_model", "list_models"]


def __getattr__(name: str) -> Any:
    # The API pulls in the whole runner; importing it only when asked keeps `import aebench.data` light.
    if name == "benchmark":
        from aebench.api import benchmark

        return benchmark
    raise AttributeError(f"module 'aebench' has no attribute {name!r}")
