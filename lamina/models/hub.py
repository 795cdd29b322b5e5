"""Hugging Face hub ids and local directories, loaded with transformers as usual.

Offline, a hub id fails within seconds in one line: when the hub cannot be reached (one TCP connection,
3 s at most) a model already in the local cache is loaded from it, and any other fails at once instead of
going through the hub client's retries (about 40 s here).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from lamina.errors import ModelSpecError

OFFLINE_HELP = ("Use the embedded model (smollm2-135m), random:<model_type>, or a local folder with config.json "
                "and weights")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the hub's endpoint (through a proxy we cannot tell: assume reachable)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def in_cache(spec: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except ValueError:  # HFValidationError: an id the cache layout cannot hold
        return False


def load_pretrained(spec: str, revision: str | None = None):
    """(model, tokenizer) from a local folder or a hub id; a one-line error when it cannot be found."""
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelSpecError(f"folder {spec} has no config.json: it is not a transformers model folder")
        where, source, offline = "local folder", str(local), True
    else:
        where, source = "hub id", spec
        offline = not hub_reachable()
        if offline and not in_cache(spec):
            raise ModelSpecError(f"cannot load '{spec}': the Hugging Face hub is not reachable (offline?) and the "
                                 f"model is not in the local cache. {OFFLINE_HELP}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(source, revision=revision, local_files_only=offline)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=offline)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelSpecError(f"could not load '{spec}' as a {where}: {first[:200]}. {OFFLINE_HELP}") from None
    return model, tokenizer
