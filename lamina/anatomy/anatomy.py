"""An architecture family bound to one loaded model: dimensions from its config, and site -> module."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lamina.anatomy.families import Family, family_for, supported_model_types
from lamina.errors import UnsupportedArchitectureError
from lamina.sites import LAYER_KINDS, Site


@dataclass(frozen=True)
class Location:
    """Where a site is read: a module, its first input or its output, and a reshape (q/k/v heads)."""

    module: str
    on: str                        # "input" | "output"
    split: str | None = None       # "q" | "k" | "v" for projections; None for plain tensors


@dataclass(frozen=True)
class Anatomy:
    family: Family
    model_type: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    parallel: bool
    norm_eps: float
    context_length: int | None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The per-layer site kinds this model has."""
        return tuple(k for k in LAYER_KINDS if not (k == "resid_mid" and self.parallel))

    def block(self, layer: int) -> str:
        return f"{self.family.layers}.{layer}"

    def locate(self, site: Site) -> Location:
        """The module and hook for a site that is read from a module (not `hidden.I`, not derived)."""
        f = self.family
        if site.kind == "embed":  # the residual stream entering block 0, whatever scaling the model applies
            return Location(self.block(0), "input")
        if site.kind == "final_norm.input" or site.is_derived:
            return Location(f.final_norm, "input")
        if site.kind == "final_norm":
            return Location(f.final_norm, "output")
        if site.kind == "logits":
            return Location(f.unembed, "output")
        kind = "qkv" if site.kind in ("q", "k", "v") and "qkv" in f.sites else site.kind
        path, on = f.sites[kind]
        module = self.block(site.layer) + (f".{path}" if path else "")
        return Location(module, on, site.kind if site.kind in ("q", "k", "v") else None)

    def split_heads(self, which: str, x: torch.Tensor) -> torch.Tensor:
        """[..., projection] -> [..., heads, d_head] for q, k or v (fused layouts split first)."""
        h, kv, d = self.n_heads, self.n_kv_heads, self.d_head
        layout = self.family.qkv_layout
        if layout == "gpt2":      # [q | k | v], each d_model wide
            x = x.split(h * d, dim=-1)["qkv".index(which)]
        elif layout == "phi3":    # [q (h heads) | k (kv heads) | v (kv heads)]
            x = x.split([h * d, kv * d, kv * d], dim=-1)["qkv".index(which)]
        elif layout == "neox":    # per head [q_h | k_h | v_h]
            i = "qkv".index(which)
            return x.unflatten(-1, (h, 3 * d))[..., i * d:(i + 1) * d]
        elif layout == "grouped":  # per k/v head group [q (h/kv heads) | k | v]: neox when kv = h, phi3 when kv = 1
            groups = x.unflatten(-1, (kv, h // kv + 2, d))
            if which == "q":
                return groups[..., :-2, :].flatten(-3, -2)
            return groups[..., -2 if which == "k" else -1, :]
        elif layout == "codegen":  # 4 model-parallel chunks, each [q | v | k] over h/4 heads
            x = x.unflatten(-1, (4, 3, -1))[..., "qvk".index(which), :].flatten(-2)
        return x.unflatten(-1, (-1, d))

    def final_norm_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale [..., 1], normalized [..., d]) of the final norm's input, before its weight and bias."""
        x32 = x.float()  # norms compute in float32 whatever the model dtype
        if self.family.norm == "rmsnorm":
            scale = torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + self.norm_eps)
            return scale, (x32 / scale).to(x.dtype)
        centered = x32 - x32.mean(-1, keepdim=True)
        scale = torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + self.norm_eps)
        return scale, (centered / scale).to(x.dtype)


def _norm_eps(module: torch.nn.Module, family: Family) -> float:
    for attr in ("eps", "variance_epsilon", "epsilon"):
        if hasattr(module, attr):
            return float(getattr(module, attr))
    if family.norm_eps is not None:  # a norm that hard-codes its eps in forward (OLMo 1)
        return family.norm_eps
    raise UnsupportedArchitectureError(f"cannot find the epsilon of the final norm {type(module).__name__}")


def anatomy_for(model: torch.nn.Module) -> Anatomy:
    """Bind the right family table to a loaded `*ForCausalLM` model, or say how to add one."""
    config = model.config
    family = family_for(config.model_type)
    if family is None:
        raise UnsupportedArchitectureError(
            f"no anatomy adapter for model type '{config.model_type}'; supported: "
            f"{', '.join(supported_model_types())}. Add a Family table in lamina/anatomy/families_gpt.py or "
            "families_llama.py (see docs/SITES.md)"
        )
    n_heads = config.num_attention_heads
    d_model = config.hidden_size
    parallel = family.parallel if isinstance(family.parallel, bool) else bool(getattr(config, family.parallel))
    context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return Anatomy(
        family=family,
        model_type=config.model_type,
        n_layers=len(model.get_submodule(family.layers)),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=(family.kv_heads(config) if family.kv_heads
                    else (getattr(config, "num_key_value_heads", None) or n_heads)),
        d_head=getattr(config, "head_dim", None) or d_model // n_heads,
        parallel=parallel,
        norm_eps=_norm_eps(model.get_submodule(family.final_norm), family),
        context_length=context,
    )
