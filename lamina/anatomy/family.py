"""The shape of an architecture table: where each site lives in one family of transformers models.

A family is data, not code: module paths (relative to the block for per-layer sites), whether the site is
the module's input or output, and how fused Q/K/V projections are laid out. The tables themselves are in
`families_gpt.py` (GPT-2's lineage and its kin) and `families_llama.py` (Llama's); `families.py` looks
them up. Paths are for the `*ForCausalLM` classes of transformers 5.

The residual algebra every table must satisfy (checked on load by `anatomy.check`):
    sequential block:  resid_mid  = resid_pre + attn_out;   resid_post = resid_mid + mlp_out
    parallel block:    resid_post = resid_pre + attn_out + mlp_out      (no resid_mid exists)
attn_out and mlp_out are always what is *added* to the residual stream: for blocks with post-norms on
the branches (Gemma 2/3, OLMo 2) that is the post-norm's output, and `mlp_out_norm` names that norm.
Per-family notes, with every table as prose: docs/SITES.md.
"""
from __future__ import annotations

from collections.abc import Callable
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
    kv_heads: Callable | None = None  # config -> k/v head count, where num_key_value_heads does not say it
    norm_eps: float | None = None    # the final norm's eps where the module hard-codes it (no eps attribute)
    written_in_place: tuple[str, ...] = ()  # site kinds the model modifies in place after the hook: copied
    notes: str = ""
