"""Where each site lives, one table per architecture family.

A family is data, not code: module paths (relative to the block for per-layer sites), whether the site is
the module's input or output, and how fused Q/K/V projections are laid out. Adding an architecture means
adding a table here and a random-model test in tests/test_anatomy.py. Paths are for the `*ForCausalLM`
class of transformers 5.

The residual algebra every table must satisfy (checked on load by `anatomy.check`):
    sequential block:  resid_mid  = resid_pre + attn_out;   resid_post = resid_mid + mlp_out
    parallel block:    resid_post = resid_pre + attn_out + mlp_out      (no resid_mid exists)
attn_out and mlp_out are always what is *added* to the residual stream: for blocks with post-norms on
the branches (Gemma 2/3, OLMo 2) that is the post-norm's output, and `mlp_out_norm` names that norm.
Per-family notes, with every table as prose: docs/SITES.md.
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
    qkv_layout: str = "separate"     # "separate" | "gpt2" | "neox" | "phi3" | "grouped" | "codegen" (fused)
    mlp_down: str = ""               # MLP output projection in the block: mlp_out = mlp_down(mlp_post)
    mlp_in: dict[str, str] = field(default_factory=dict)  # MLP input projections: "in", or "gate" and "up"
    mlp_out_norm: str = ""           # post-norm blocks: norm applied to mlp_down's output before the residual
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
        model_types=("llama", "mistral", "qwen2", "qwen3", "smollm3", "helium", "ernie4_5", "seed_oss"),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites=_LLAMA_SITES,
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
    Family(
        name="gptj",
        model_types=("gptj",),
        layers="transformer.h",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("attn", "output"),
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "q": ("attn.q_proj", "output"),
            "k": ("attn.k_proj", "output"),
            "v": ("attn.v_proj", "output"),
        },
        mlp_down="mlp.fc_out",
        mlp_in={"in": "mlp.fc_in"},
        parallel=True,
        notes="GPT-J: parallel block x + attn(ln_1(x)) + mlp(ln_1(x)), one norm, so resid_mid does not exist. "
        "q and k are taken before the rotary embedding (interleaved, on the first rotary_dim dims).",
    ),
    Family(
        name="codegen",
        model_types=("codegen",),
        layers="transformer.h",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("attn", "output"),
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "qkv": ("attn.qkv_proj", "output"),
        },
        qkv_layout="codegen",
        mlp_down="mlp.fc_out",
        mlp_in={"in": "mlp.fc_in"},
        parallel=True,
        notes="CodeGen: GPT-J's parallel block with a fused qkv_proj in 4 model-parallel chunks, each "
        "[q | v | k] (value before key) over heads/4 heads.",
    ),
    Family(
        name="gpt_neo",
        model_types=("gpt_neo",),
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
            "q": ("attn.attention.q_proj", "output"),
            "k": ("attn.attention.k_proj", "output"),
            "v": ("attn.attention.v_proj", "output"),
        },
        mlp_down="mlp.c_proj",
        mlp_in={"in": "mlp.c_fc"},
        notes="GPT-Neo: GPT-2's block with separate q/k/v one level deeper (attn.attention); global and "
        "local (windowed) attention layers alternate; attention logits are not scaled by 1/sqrt(d_head).",
    ),
    Family(
        name="opt",
        model_types=("opt",),
        layers="model.decoder.layers",
        final_norm="model.decoder.final_layer_norm",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("self_attn", "output"),
            "resid_mid": ("final_layer_norm", "input"),  # the block's pre-MLP norm (OPT's name)
            "mlp_pre": ("fc1", "output"),
            "mlp_post": ("fc2", "input"),
            "mlp_out": ("fc2", "output"),
            "resid_post": ("", "output"),
            "q": ("self_attn.q_proj", "output"),
            "k": ("self_attn.k_proj", "output"),
            "v": ("self_attn.v_proj", "output"),
        },
        mlp_down="fc2",
        mlp_in={"in": "fc1"},
        notes="OPT (pre-norm: 125m, 1.3b and up): the MLP is fc1/activation_fn/fc2 directly in the block and "
        "runs on [batch*tokens, d] tensors, which capture restores to [batch, tokens, d]; the block's "
        "pre-MLP norm is called final_layer_norm. q is q_proj's output, before OPT's 1/sqrt(d_head) scaling. "
        "OPT-350m (post-norm, project_in/project_out) fails the anatomy check on load.",
    ),
    Family(
        name="gemma",
        model_types=("gemma",),
        layers="model.layers",
        final_norm="model.norm",
        unembed="lm_head",
        norm="rmsnorm",
        sites=_LLAMA_SITES,
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
        sites=_LLAMA_SITES,                # resid_mid (post_attention_layernorm) exists in sequential blocks only
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
            **{k: v for k, v in _LLAMA_SITES.items() if k not in ("mlp_pre", "mlp_post")},
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
        },
        mlp_down="mlp.c_proj",
        mlp_in={"in": "mlp.c_fc"},
        notes="StarCoder2: Llama's attention (GQA, RoPE) and names, LayerNorm, ungated MLP c_fc/act/c_proj.",
    ),
    Family(
        name="bloom",
        model_types=("bloom",),
        layers="transformer.h",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("self_attention.dense", "output"),  # the module adds the residual itself
            "resid_mid": ("post_attention_layernorm", "input"),
            "mlp_pre": ("mlp.gelu_impl", "input"),
            "mlp_post": ("mlp.gelu_impl", "output"),
            "mlp_out": ("mlp.dense_4h_to_h", "output"),      # the MLP module adds the residual itself
            "resid_post": ("", "output"),
            "qkv": ("self_attention.query_key_value", "output"),
        },
        qkv_layout="neox",
        mlp_down="mlp.dense_4h_to_h",
        mlp_in={"in": "mlp.dense_h_to_4h"},
        notes="BLOOM: self_attention and mlp return residual + branch, so attn_out and mlp_out are their output "
        "projections (dense, dense_4h_to_h). ALiBi (no q/k rotation); embed is after word_embeddings_layernorm. "
        "Fused query_key_value interleaved per head like GPT-NeoX.",
    ),
    Family(
        name="gpt_bigcode",
        model_types=("gpt_bigcode",),
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
        qkv_layout="grouped",
        mlp_down="mlp.c_proj",
        mlp_in={"in": "mlp.c_fc"},
        notes="StarCoder/SantaCoder: GPT-2's block with nn.Linear projections and multi-query attention; c_attn "
        "is [q (heads) | k | v] with one k/v head (multi_query), or per head [q_h | k_h | v_h] without.",
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
