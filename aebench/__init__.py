"""aebench: an adversarial-robustness benchmark harness for autoencoders."""

from aebench.models import create_model, list_models
from aebench.models.base import MODELS, AutoEncoder

__version__ = "0.1.0"
__all__ = ["MODELS", "AutoEncoder", "create_model", "list_models", "__version__"]
