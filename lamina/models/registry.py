"""Model specs -> loaded models: the embedded default, `random:<type>`, hub ids and local folders."""
from __future__ import annotations

import time

import torch

from lamina.anatomy import anatomy_for
from lamina.errors import ModelSpecError
from lamina.models import embedded
from lamina.models.language_model import LanguageModel

DEFAULT_MODEL = embedded.NAME
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load(spec: str = DEFAULT_MODEL, seed: int = 0, dtype: str | None = None, device: str = "cpu",
         check: bool = True) -> LanguageModel:
    """Load a model by spec, bind its anatomy, and (by default) prove the anatomy's residual identities."""
    spec = (spec or DEFAULT_MODEL).strip()
    start = time.perf_counter()
    if spec == embedded.NAME:
        source = "cache" if (embedded.cached_dir() / "model.safetensors").exists() else "gguf"
        model, tokenizer = embedded.load_embedded()
    elif spec.startswith("random:"):
        from lamina.models.random_models import load_random

        source = "random"
        model, tokenizer = load_random(spec.split(":", 1)[1], seed=seed)
    elif ":" in spec and not spec.startswith((".", "/")):
        raise ModelSpecError(f"unknown model spec '{spec}'; use {DEFAULT_MODEL}, random:<model_type>, a hub id or a folder")
    else:
        from lamina.models.hub import load_pretrained

        source = "pretrained"
        model, tokenizer = load_pretrained(spec)
    if dtype is not None:
        if dtype not in DTYPES:
            raise ModelSpecError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
        model = model.to(DTYPES[dtype])
    model = model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # positions of real tokens stay 0..n-1 under padding
    lm = LanguageModel(model, tokenizer, anatomy_for(model), spec, seed if source == "random" else None)
    lm.info = {"source": source, "load_seconds": round(time.perf_counter() - start, 3),
               "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
    if check:
        lm.check_anatomy()
    return lm


def random_like(lm: LanguageModel, seed: int = 0) -> LanguageModel:
    """A random-weights model of the same architecture and shape as `lm` (its config, transformers' own
    initialisation under `seed`), with the same tokenizer, dtype and device: the negative control of an
    analysis that should find nothing in a model that learned nothing."""
    from transformers import AutoModelForCausalLM

    param = next(lm.model.parameters())
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(lm.model.config)
    model = model.to(dtype=param.dtype, device=param.device).eval()
    out = LanguageModel(model, lm.tokenizer, anatomy_for(model), f"random-weights({lm.spec}, seed {seed})", seed)
    out.info = {"source": "random-like", "dtype": str(param.dtype).removeprefix("torch.")}
    return out
