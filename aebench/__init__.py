"""aebench: an adversarial-robustness benchmark harness for autoencoders."""

from aebench.models import AutoEncoder, create_model, list_models

__version__ = "0.1.0"
__all__ = ["AutoEncoder", "create_model", "list_models", "__version__"]
