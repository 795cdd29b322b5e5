"""Where each site lives, one table per architecture family: the lookup by transformers `model_type`.

Adding an architecture means adding a `Family` table (the fields are explained in family.py) to
`families_gpt.py` or `families_llama.py`, and a random-model test in tests/test_families.py.
"""
from __future__ import annotations

from lamina.anatomy.families_gpt import GPT_FAMILIES
from lamina.anatomy.families_llama import LLAMA_FAMILIES
from lamina.anatomy.family import Family

__all__ = ["FAMILIES", "Family", "family_for", "supported_model_types"]

FAMILIES: list[Family] = GPT_FAMILIES + LLAMA_FAMILIES


def family_for(model_type: str) -> Family | None:
    """The family whose table covers this transformers `model_type`, or None."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    return None


def supported_model_types() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.model_types)
