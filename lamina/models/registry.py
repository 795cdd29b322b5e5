"""Model specs -> loaded models: the embedded default, `random:<type>`, hub ids and local folders."""
from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path

import torch

from lamina.anatomy import anatomy_for
from lamina.errors import ModelSpecError
from lamina.models import embedded
from lamina.models.language_model import LanguageModel

DEFAULT_MODEL = embedded.NAME
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Hub models still reachable by a name without an owner (the hub redirects them to openai-community/...).
CANONICAL = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2", "openai-gpt")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def as_model(lm, seed: int = 0):
    """A LanguageModel as it is, a spec string loaded; anything else refused (for functions taking `lm`)."""
    if isinstance(lm, LanguageModel):
        return lm
    if isinstance(lm, (str, os.PathLike)):
        return load(str(lm), seed=seed)
    raise ModelSpecError(f"expected a model loaded with lamina.load(...) or a model spec string, not "
                         f"{type(lm).__name__}")


def suggestions(spec: str) -> list[str]:
    """Close matches of an unknown name among the embedded model, random:<type> and hub ids."""
    from lamina.models.random_models import PER_TYPE

    name = spec.lower().removeprefix("random:")
    name = re.sub(r"[-_](small|base|mini|tiny)$", "", name)
    keys = [DEFAULT_MODEL, *PER_TYPE, *CANONICAL]
    found = []
    for match in difflib.get_close_matches(name, list(dict.fromkeys(keys)), n=3, cutoff=0.5):
        if match == DEFAULT_MODEL:
            found.append(match)
        if match in PER_TYPE:
            found.append(f"random:{match}")
        if match in CANONICAL:
            found.append(f"openai-community/{match}")
    return list(dict.fromkeys(found))[:3]


def check_spec(spec: str) -> None:
    """Fail at once on a spec that can only be a typo: not a folder here, not owner/name, not a known name."""
    if spec == DEFAULT_MODEL or spec.startswith("random:") or spec in CANONICAL:
        return
    path_like = spec.startswith(("./", "../", "/", "~", ".\\")) or os.sep in spec and not HUB_ID.fullmatch(spec)
    if Path(spec).expanduser().exists():
        return
    if path_like:
        raise ModelSpecError(f"model folder {spec} does not exist")
    if HUB_ID.fullmatch(spec):
        return
    close = suggestions(spec)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ModelSpecError(f"unknown model '{spec}': {hint}Give {DEFAULT_MODEL}, random:<model_type>, a hub id "
                         "owner/name such as openai-community/gpt2, or a local folder")


def load(spec: str = DEFAULT_MODEL, seed: int = 0, dtype: str | None = None, device: str = "cpu",
         check: bool = True) -> LanguageModel:
    """Load a model by spec, bind its anatomy, and (by default) prove the anatomy's residual identities."""
    if isinstance(spec, os.PathLike):
        spec = str(spec)
    if spec is not None and not isinstance(spec, str):
        raise ModelSpecError(f"a model spec is a string such as '{DEFAULT_MODEL}', 'random:gpt2', a hub id or a "
                             f"folder, not {type(spec).__name__} {spec!r}")
    spec = (spec or DEFAULT_MODEL).strip()
    check_spec(spec)
    start = time.perf_counter()
    if spec == embedded.NAME:
        source = "cache" if (embedded.cached_dir() / "model.safetensors").exists() else "gguf"
        model, tokenizer = embedded.load_embedded()
    elif spec.startswith("random:"):
        from lamina.models.random_models import load_random

        source = "random"
        try:
            model, tokenizer = load_random(spec.split(":", 1)[1], seed=seed)
        except ModelSpecError as err:
            close = [c for c in suggestions(spec) if c.startswith("random:")]
            raise ModelSpecError(f"{err}" + (f"; did you mean {' or '.join(close)}?" if close else "")) from None
    elif ":" in spec and not spec.startswith((".", "/")):
        raise ModelSpecError(f"unknown model spec '{spec}'; use {DEFAULT_MODEL}, random:<model_type>, "
                             "a hub id or a folder")
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


def load_tokenizer(spec: str = DEFAULT_MODEL):
    """The tokenizer of a model spec without its weights (for reading a store's tokens), set up as `load` does."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec.startswith("random:"):
        from lamina.models.tokenizers import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    elif spec == embedded.NAME and (embedded.cached_dir() / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(embedded.cached_dir())
    elif spec == embedded.NAME:
        tokenizer = embedded.load_embedded()[1]
    else:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(spec)
        except OSError as err:
            raise ModelSpecError(f"cannot load the tokenizer of '{spec}': {err}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


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
