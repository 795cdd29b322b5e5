"""Architecture tables for GPT-2's lineage and the other LayerNorm designs of its era (mostly `transformer.h`
blocks, often fused q/k/v): GPT-2, GPT-NeoX, GPT-J, CodeGen, GPT-Neo, OPT, BLOOM, GPT-BigCode, Falcon.
The fields are explained in family.py."""
from __future__ import annotations

from lamina.anatomy.family import Family


def _falcon_kv_heads(config) -> int:
    """FalconAttention.num_kv_heads: num_kv_heads in the new (40B) blocks, else 1 (multi-query) or every head."""
    if config.new_decoder_architecture:
        return config.num_kv_heads
    return 1 if config.multi_query else config.num_attention_heads


GPT_FAMILIES: list[Family] = [
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
    Family(
        name="falcon",
        model_types=("falcon",),
        layers="transformer.h",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm="layernorm",
        sites={
            "resid_pre": ("", "input"),
            "attn_out": ("self_attention", "output"),
            "resid_mid": ("post_attention_layernorm", "input"),  # sequential blocks only (Falcon-RW)
            "mlp_pre": ("mlp.act", "input"),
            "mlp_post": ("mlp.act", "output"),
            "mlp_out": ("mlp", "output"),
            "resid_post": ("", "output"),
            "qkv": ("self_attention.query_key_value", "output"),
        },
        qkv_layout="grouped",
        mlp_down="mlp.dense_4h_to_h",
        mlp_in={"in": "mlp.dense_h_to_4h"},
        parallel="parallel_attn",
        kv_heads=_falcon_kv_heads,
        written_in_place=("mlp_out",),   # parallel blocks do `mlp_output += attention_output`
        notes="Falcon: parallel attention and MLP (one norm in 7B, ln_attn/ln_mlp in 40B/180B), sequential in "
        "Falcon-RW; the block adds the attention output into the MLP's output tensor in place, so mlp_out is "
        "copied when captured. Fused query_key_value per k/v group [q (heads/kv) | k | v]: multi-query (7B), "
        "grouped (40B) and per-head (RW) are the same layout with 1, num_kv_heads or every head.",
    ),
]
