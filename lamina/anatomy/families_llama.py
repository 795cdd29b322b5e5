"""Architecture tables for Llama's lineage (`model.layers` blocks with Llama's module names or close to them):
Llama and its copies, Phi-3, Gemma 1-3, OLMo 1-3, Phi-1/2, StableLM, StarCoder2. The fields are explained
in family.py."""
from __future__ import annotations

from lamina.anatomy.family import Family

# Llama-style blocks: pre-norm, separate q/k/v projections, gated MLP down_proj(act(gate) * up).
LLAMA_SITES = {
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

LLAMA_FAMILIES: list[Family] = [
    Family(
        name="llama",
        model_types=("llama", "mistral", "qwen2", "qwen3", "smollm3", "helium", "ernie4_5", "seed_oss"),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites=LLAMA_SITES,
        mlp_down="mlp.down_proj",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        notes="Llama, Mistral, Qwen2, Qwen3, SmolLM (1-3), Helium, ERNIE 4.5 (dense), Seed-OSS: identical blocks. "
        "q and k are taken before RoPE "
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
            **{k: v for k, v in LLAMA_SITES.items() if k not in ("q", "k", "v", "mlp_pre")},
            "mlp_pre": ("mlp.activation_fn", "input"),
            "qkv": ("self_attn.qkv_proj", "output"),
        },
        qkv_layout="phi3",
        mlp_down="mlp.down_proj",
        mlp_in={"gate_up": "mlp.gate_up_proj"},  # fused [gate | up]
        notes="Fused qkv_proj laid out [q (heads) | k (kv heads) | v (kv heads)]; fused gate_up_proj.",
    ),
    Family(
        name="gemma",
        model_types=("gemma",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites=LLAMA_SITES,
        mlp_down="mlp.down_proj",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        notes="Gemma: Llama's block. The embedding is multiplied by sqrt(d_model) before block 0 (embed "
        "includes it); norms multiply by (1 + weight), so final_norm.normalized is before that factor.",
    ),
    Family(
        name="gemma2",
        model_types=("gemma2", "gemma3_text"),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("post_attention_layernorm", "output"),  # after the post-attention norm
            "resid_mid": ("pre_feedforward_layernorm", "input"),
            "mlp_pre": ("mlp.act_fn", "input"),
            "mlp_post": ("mlp.down_proj", "input"),
            "mlp_out": ("post_feedforward_layernorm", "output"),  # after the post-MLP norm
            "resid_post": ("", "output"),
            "q": ("self_attn.q_proj", "output"),
            "k": ("self_attn.k_proj", "output"),
            "v": ("self_attn.v_proj", "output"),
        },
        mlp_down="mlp.down_proj",
        mlp_out_norm="post_feedforward_layernorm",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        notes="Gemma 2 and Gemma 3 (text): pre- and post-norms around each branch, so attn_out and mlp_out are "
        "the post-norms' outputs (what is added to the residual), not the attention/MLP module outputs. "
        "Embedding scaled by sqrt(d_model); (1 + weight) norms; q/k before RoPE (and Gemma 3's q_norm/k_norm). "
        "logits is lm_head's output, before Gemma 2's final logit soft-capping.",
    ),
    Family(
        name="olmo2",
        model_types=("olmo2", "olmo3", "exaone4"),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("post_attention_layernorm", "output"),  # after the post-attention norm
            "resid_mid": ("mlp", "input"),                       # no pre-MLP norm
            "mlp_pre": ("mlp.act_fn", "input"),
            "mlp_post": ("mlp.down_proj", "input"),
            "mlp_out": ("post_feedforward_layernorm", "output"),  # after the post-MLP norm
            "resid_post": ("", "output"),
            "q": ("self_attn.q_proj", "output"),
            "k": ("self_attn.k_proj", "output"),
            "v": ("self_attn.v_proj", "output"),
        },
        mlp_down="mlp.down_proj",
        mlp_out_norm="post_feedforward_layernorm",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        notes="OLMo 2, OLMo 3 and EXAONE 4: post-norms only (no norm before attention or MLP), so attn_out and mlp_out "
        "are the post-norms' outputs and resid_mid is the MLP's own input. q/k before q_norm/k_norm and RoPE.",
    ),
    Family(
        name="phi",
        model_types=("phi",),
        layers="model.layers",
        final_norm="model.final_layernorm",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("self_attn", "output"),
            "mlp_pre": ("mlp.fc1", "output"),
            "mlp_post": ("mlp.fc2", "input"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "q": ("self_attn.q_proj", "output"),
            "k": ("self_attn.k_proj", "output"),
            "v": ("self_attn.v_proj", "output"),
        },
        mlp_down="mlp.fc2",
        mlp_in={"in": "mlp.fc1"},
        parallel=True,
        notes="Phi-1, Phi-1.5, Phi-2: parallel block x + attn(ln(x)) + mlp(ln(x)), one norm; partial RoPE; "
        "q/k before the optional per-head qk_layernorm and RoPE.",
    ),
    Family(
        name="stablelm",
        model_types=("stablelm",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="layernorm",
        sites=LLAMA_SITES,                # resid_mid (post_attention_layernorm) exists in sequential blocks only
        mlp_down="mlp.down_proj",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        parallel="use_parallel_residual",
        notes="StableLM (2): Llama's module names with LayerNorm instead of RMSNorm; parallel attention and MLP "
        "when use_parallel_residual; partial RoPE; q/k before the optional per-head qk_layernorm.",
    ),
    Family(
        name="starcoder2",
        model_types=("starcoder2",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="layernorm",
        sites={
            **{k: v for k, v in LLAMA_SITES.items() if k not in ("mlp_pre", "mlp_post")},
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
        },
        mlp_down="mlp.c_proj",
        mlp_in={"in": "mlp.c_fc"},
        notes="StarCoder2: Llama's attention (GQA, RoPE) and names, LayerNorm, ungated MLP c_fc/act/c_proj.",
    ),
    Family(
        name="olmo",
        model_types=("olmo",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="layernorm",
        sites=LLAMA_SITES,
        mlp_down="mlp.down_proj",
        mlp_in={"gate": "mlp.gate_proj", "up": "mlp.up_proj"},
        norm_eps=1e-5,                   # OlmoLayerNorm calls F.layer_norm(..., eps=1e-5) and stores no eps
        written_in_place=("q", "k", "v"),  # clip_qkv clamps the projections in place (OLMo 1.7)
        notes="OLMo 1: Llama's block with parameter-free LayerNorms (no weight, no bias, eps 1e-5 hard-coded). "
        "q/k/v are the projections' outputs before the optional clip_qkv clamp and RoPE.",
    ),
]
