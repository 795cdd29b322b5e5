"""lamina: read a transformer language model's insides correctly, neuron by neuron and layer by layer.

Every command-line verb is a function here: `lamina.verify`, `lamina.profile`, `lamina.extract`,
`lamina.logit_lens`, `lamina.project`, ... (loaded on first use, so `import lamina` stays light).
"""
from importlib import import_module

from lamina.analyses.verify import verify
from lamina.errors import LaminaError
from lamina.models import DEFAULT_MODEL, LanguageModel, load
from lamina.version import __version__

_LAZY = {  # name -> module that defines it
    "profile": "lamina.analyses.profile",
    "extract": "lamina.extract",
    "logit_lens": "lamina.analyses.logit_lens",
    "project": "lamina.analyses.projections",
    "tune": "lamina.analyses.tuning",
    "build_contrast": "lamina.analyses.contrasts",
    "maximize": "lamina.analyses.maximize",
    "top_examples": "lamina.analyses.top_examples",
    "load_corpus": "lamina.data.corpus",
    "ActivationStore": "lamina.store",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina' has no attribute '{name}'")


__all__ = ["load", "verify", "LanguageModel", "LaminaError", "DEFAULT_MODEL", "__version__", *_LAZY]
