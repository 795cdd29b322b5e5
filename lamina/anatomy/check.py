"""Prove an adapter on the model in hand: the residual identities must hold, or loading fails loudly.

`LanguageModel.check_anatomy` captures `check_sites` in one short forward pass and hands the activations
to `check_identities`, which needs only the anatomy, the model's modules and those activations.

An adapter that points at the wrong module returns plausible numbers; these identities catch it:
    sequential block:  resid_mid = resid_pre + attn_out,  resid_post = resid_mid + mlp_out
    parallel block:    resid_post = resid_pre + attn_out + mlp_out
    every block:       mlp_out = mlp_down(mlp_post) (then mlp_out_norm, if any),  resid_pre.(L+1) = resid_post.L
    q: [.., heads, d_head], k and v: [.., kv heads, d_head]
"""
from __future__ import annotations

import torch

from lamina.errors import AnatomyCheckError

CHECK_TEXT = "The quick brown fox jumps over the lazy dog. It was not amused."
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def tolerance(reference: torch.Tensor) -> float:
    """Allowed max |difference| against `reference`: relative to its magnitude, by dtype."""
    rtol = RELATIVE_TOLERANCE.get(reference.dtype, 1e-5)
    return rtol * max(1.0, float(reference.abs().max()))


def check_sites(anatomy) -> list[str]:
    """Every per-layer site kind of this model, and the final norm's input: what `check_identities` reads."""
    return [k for k in anatomy.kinds if k not in ("q", "k", "v")] + ["q", "k", "v", "final_norm.input"]


def check_identities(a, model: torch.nn.Module, acts) -> dict[str, float]:
    """Max |difference| of each identity on `acts` (`check_sites` from one forward pass of `model`, whose
    anatomy is `a`); raises AnatomyCheckError at the first identity that fails."""
    diffs: dict[str, float] = {}

    def expect(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
        diff = max_abs_diff(got, want)
        diffs[name] = diff
        if not diff <= tolerance(want):
            raise AnatomyCheckError(
                f"anatomy '{a.family.name}' does not fit this {a.model_type} model: {name} fails by {diff:.3g}; "
                "an adapter path points at the wrong module"
            )

    for L in range(a.n_layers):
        def g(kind, L=L):
            return acts[f"{kind}.{L}"]

        if a.parallel:
            expect(f"resid_post.{L} = resid_pre + attn_out + mlp_out",
                   g("resid_pre") + g("attn_out") + g("mlp_out"), g("resid_post"))
        else:
            expect(f"resid_mid.{L} = resid_pre + attn_out", g("resid_pre") + g("attn_out"), g("resid_mid"))
            expect(f"resid_post.{L} = resid_mid + mlp_out", g("resid_mid") + g("mlp_out"), g("resid_post"))
        if a.family.mlp_down:
            down = model.get_submodule(f"{a.block(L)}.{a.family.mlp_down}")
            with torch.inference_mode():
                written = down(g("mlp_post"))
                if a.family.mlp_out_norm:  # post-norm blocks: the norm sits between mlp_down and the residual
                    written = model.get_submodule(f"{a.block(L)}.{a.family.mlp_out_norm}")(written)
                expect(f"mlp_out.{L} = mlp_down(mlp_post)", written, g("mlp_out"))
        following = acts[f"resid_pre.{L + 1}"] if L + 1 < a.n_layers else acts["final_norm.input"]
        expect(f"next input = resid_post.{L}", following, g("resid_post"))
        for kind, heads in (("q", a.n_heads), ("k", a.n_kv_heads), ("v", a.n_kv_heads)):
            shape = tuple(g(kind).shape[-2:])
            if shape != (heads, a.d_head):
                raise AnatomyCheckError(f"{kind}.{L} has shape {shape}, expected ({heads}, {a.d_head}) heads x d_head")
    return diffs
