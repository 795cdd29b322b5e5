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
    "profile": "lamina.analyses.profile.laminar",
    "extract": "lamina.extract",
    "logit_lens": "lamina.analyses.vocab.logit_lens",
    "project": "lamina.analyses.vocab.projections",
    "tune": "lamina.analyses.tuning.run",
    "build_contrast": "lamina.analyses.tuning.contrasts",
    "maximize": "lamina.analyses.neurons.maximize",
    "top_examples": "lamina.analyses.neurons.top_examples",
    "load_corpus": "lamina.data.corpus",
    "ActivationStore": "lamina.store",
    "Edit": "lamina.edits",
    "Ablate": "lamina.analyses.causal.interventions",
    "Steer": "lamina.analyses.causal.interventions",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lamina' has no attribute '{name}'")


__all__ = ["load", "verify", "LanguageModel", "LaminaError", "DEFAULT_MODEL", "__version__", *_LAZY]
