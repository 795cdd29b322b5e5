"""lamina: read a transformer language model's insides correctly, neuron by neuron and layer by layer."""
from lamina.errors import LaminaError
from lamina.models import DEFAULT_MODEL, LanguageModel, load
from lamina.analyses.verify import verify

__version__ = "0.1.0"
__all__ = ["load", "verify", "LanguageModel", "LaminaError", "DEFAULT_MODEL", "__version__"]
