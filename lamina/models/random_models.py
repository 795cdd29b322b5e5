"""`random:<model_type>`: a randomly initialised transformers model with a fixed seed.

Exact for every mechanical property (hook placement, hidden-state map, shapes), useless for meaning.
`random:gpt2` has GPT-2 small's shape (12 layers, d_model 768, 3072 MLP neurons, 12 heads); other types
get the small shape below so tests and laptops run them in seconds. All use the real GPT-2 tokenizer.
"""
from __future__ import annotations

import torch

from lamina.errors import ModelSpecError
from lamina.models.tokenizers import gpt2_tokenizer

# Small shape for every type but gpt2 (4 layers, d_model 128, 4 heads, 512 MLP neurons).
SMALL_SHAPE = dict(
    num_hidden_layers=4,
    hidden_size=128,
    num_attention_heads=4,
    intermediate_size=512,
    max_position_embeddings=1024,
)
PER_TYPE = {
    "gpt2": {},  # the library default GPT2Config is GPT-2 small
    "llama": dict(num_key_value_heads=2),
    "mistral": dict(num_key_value_heads=2, sliding_window=None),
    "qwen2": dict(num_key_value_heads=2),
    "qwen3": dict(num_key_value_heads=2, head_dim=32),
    "phi3": dict(num_key_value_heads=2),
    "gpt_neox": dict(rotary_pct=0.25),
    # Configs whose fields have other names than SMALL_SHAPE's get them mapped here; SMALL_SHAPE's unused
    # names are kept by the config as plain attributes and change nothing.
    "gptj": dict(n_inner=512, rotary_dim=16),                 # n_inner: MLP width; rotary_dim <= d_head 32
    "codegen": dict(n_inner=512, rotary_dim=16),
    "gpt_neo": dict(attention_types=[[["global", "local"], 2]]),  # one attention type per layer
    "opt": dict(ffn_dim=512, word_embed_proj_dim=128),         # no project_in/project_out
    "gemma": dict(num_key_value_heads=1, head_dim=32),        # multi-query, as Gemma 2B
    "gemma2": dict(num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32),
    "gemma3_text": dict(num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32),
    "olmo2": dict(num_key_value_heads=2),
    "olmo3": dict(num_key_value_heads=2),
    "exaone4": dict(num_key_value_heads=2, head_dim=32),
    "helium": dict(num_key_value_heads=2, head_dim=32),
    "seed_oss": dict(num_key_value_heads=2, head_dim=32),
    "smollm3": dict(num_key_value_heads=2),
    "ernie4_5": dict(num_key_value_heads=2, head_dim=32),
    "stablelm": dict(num_key_value_heads=2),                  # the config's default is 32
    "starcoder2": dict(num_key_value_heads=2),
    # n_head as well: __post_init__ derives num_key_value_heads from n_head before the alias is applied
    "gpt_bigcode": dict(n_inner=512, n_head=4),               # multi-query c_attn by default
}


def random_config(model_type: str, **overrides):
    from transformers import AutoConfig

    tokenizer = gpt2_tokenizer()
    shape = {} if model_type == "gpt2" else dict(SMALL_SHAPE)
    shape.update(PER_TYPE.get(model_type, {}))
    shape.update(overrides)
    try:
        config = AutoConfig.for_model(
            model_type,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
            **shape,
        )
    except ValueError:
        raise ModelSpecError(f"random:{model_type}: transformers has no model type '{model_type}'") from None
    return config


def load_random(model_type: str, seed: int = 0, **overrides):
    """(model, tokenizer) with weights drawn from transformers' own initialisation under `seed`."""
    from transformers import AutoModelForCausalLM

    config = random_config(model_type, **overrides)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError as err:
            raise ModelSpecError(f"random:{model_type}: no causal-LM class ({err})") from None
    return model, gpt2_tokenizer()
