"""Hugging Face hub ids and local directories, loaded with transformers as usual."""
from __future__ import annotations

from pathlib import Path

from lamina.errors import ModelSpecError


def load_pretrained(spec: str, revision: str | None = None):
    """(model, tokenizer) from a local folder or a hub id; a one-line error when it cannot be found."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = "local directory" if Path(spec).exists() else "hub id"
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(spec, revision=revision)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelSpecError(
            f"could not load '{spec}' as a {where}: {first[:200]}. Offline? Use the embedded model "
            "(smollm2-135m), random:<model_type>, or a local folder with config.json and weights"
        ) from None
    return model, tokenizer
