"""Where each site lives, one table per architecture family.

A family is data, not code: module paths (relative to the block for per-layer sites), whether the site is
the module's input or output, and how fused Q/K/V projections are laid out. Adding an architecture means
adding a table here and a random-model test in tests/test_anatomy.py. Paths are for the `*ForCausalLM`
class of transformers 5.

The residual algebra every table must satisfy (checked on load by `anatomy.check`):
    sequential block:  resid_mid  = resid_pre + attn_out;   resid_post = resid_mid + mlp_out
    parallel block:    resid_post = resid_pre + attn_out + mlp_out      (no resid_mid exists)
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layers: str                      # path of the ModuleList of blocks
    final_norm: str                  # path of the norm between the last block and the unembedding
    unembed: str                     # path of the unembedding (lm_head)
    norm: str                        # "layernorm" | "rmsnorm": how final_norm.scale is computed
    sites: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (path in block, "input"|"output")
    qkv_layout: str = "separate"     # "separate" | "gpt2" | "neox" | "phi3" (fused projections)
    mlp_down: str = ""               # MLP output projection in the block: mlp_out = mlp_down(mlp_post)
    mlp_in: dict[str, str] = field(default_factory=dict)  # MLP input projections: "in", or "gate" and "up"
    parallel: bool | str = False     # parallel attention+MLP; a str names the config flag that decides
    notes: str = ""


# Llama-style blocks: pre-norm, separate q/k/v projections, gated MLP down_proj(act(gate) * up).
_LLAMA_SITES = {
    "resid_pre": ("", "input"),
    "attn_out": ("self_attn", "output"),
    "resid_mid": ("post_attention_layernorm", "input"),
    "mlp_pre": ("mlp.act_fn", "input"),
    "mlp_post": ("mlp.down_proj", "input"),
    "mlp_out": ("mlp", "output"),
    "resid_post": ("", "output"),
    "q": ("self_attn.q_proj", "output"),
    "k": ("self_attn.k_proj", "output"),
    "v": ("self_attn.v_proj", "output"),
}

FAMILIES: list[Family] = [
    Family(
        name="gpt2",
        model_types=("gpt2",),
        layers="transformer.h",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("attn", "output"),
            "resid_mid": ("ln_2", "input"),
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "qkv": ("attn.c_attn", "output"),
        },
        qkv_layout="gpt2",
        mlp_down="mlp.c_proj",
        mlp_in={"in": "mlp.c_fc"},
        notes="q/k/v are split from the fused c_attn: [q | k | v], each heads x d_head.",
    ),
    Family(
        name="llama",
        model_types=("llama", "mistral", "qwen2", "qwen3"),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites=_LLAMA_SITES,
        mlp_down="mlp.down_proj",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        notes="Llama, Mistral, Qwen2, Qwen3 and SmolLM. q and k are taken before RoPE "
        "(and before Qwen3's q_norm/k_norm); grouped-query models have fewer k/v heads.",
    ),
    Family(
        name="phi3",
        model_types=("phi3",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites={
            **{k: v for k, v in _LLAMA_SITES.items() if k not in ("q", "k", "v", "mlp_pre")},
            "mlp_pre": ("mlp.activation_fn", "input"),
            "qkv": ("self_attn.qkv_proj", "output"),
        },
        qkv_layout="phi3",
        mlp_down="mlp.down_proj",
        mlp_in={"gate_up": "mlp.gate_up_proj"},  # fused [gate | up]
        notes="Fused qkv_proj laid out [q (heads) | k (kv heads) | v (kv heads)]; fused gate_up_proj.",
    ),
    Family(
        name="gpt_neox",
        model_types=("gpt_neox",),
        layers="gpt_neox.layers",
        final_norm="gpt_neox.final_layer_norm",
        unembed="lm_head",               # `embed_out` before transformers 5
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("attention", "output"),
            "resid_mid": ("post_attention_layernorm", "input"),  # sequential blocks only
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "qkv": ("attention.query_key_value", "output"),
        },
        qkv_layout="neox",
        mlp_down="mlp.dense_4h_to_h",
        mlp_in={"in": "mlp.dense_h_to_4h"},
        parallel="use_parallel_residual",
        notes="Pythia: parallel attention and MLP (use_parallel_residual), so resid_mid does not exist. "
        "Fused query_key_value is interleaved per head: [q_h | k_h | v_h] for each head h.",
    ),
]


def family_for(model_type: str) -> Family | None:
    """The family whose table covers this transformers `model_type`, or None."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    return None


def supported_model_types() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.model_types)
