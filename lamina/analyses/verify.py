"""The founding experiment: hooks on every block against `output.hidden_states`, on any model.

For each block L, max |resid_post.L - hidden.(L+1)| (zero below the last block); for the last block the
same difference raw (nonzero: hidden.N is after the final norm) and after pushing the hook's value through
the model's own final norm module (zero again). Plus the full hidden-state map, measured.
"""
from __future__ import annotations

import torch

from lamina.anatomy.check import max_abs_diff, tolerance
from lamina.anatomy.hidden_map import candidate_sites, measure_hidden_map

DEFAULT_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In a Hugging Face model, hidden states and hooks do not always agree.",
    "She did not go to Paris last summer, but her brother did.",
]


def verify(lm, texts: list[str] | None = None, truncate: bool = False) -> dict:
    """Run the founding experiment on `lm` (a loaded model or a spec); returns the fields of `lamina verify --json`."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    a = lm.anatomy
    N = a.n_layers
    batch = lm.tokenize(texts or DEFAULT_TEXTS, truncate=truncate)
    acts = lm.capture(batch, candidate_sites(N) + ["hidden"])
    layers = []
    for L in range(N):
        hook, hidden = acts.tokens(f"resid_post.{L}"), acts.tokens(f"hidden.{L + 1}")
        layers.append({
            "layer": L,
            "hidden_index": L + 1,
            "max_abs_diff": max_abs_diff(hook, hidden),
            "hook_max_abs": float(hook.abs().max()),
            "hidden_max_abs": float(hidden.abs().max()),
        })
    raw_last, hidden_last = acts.tokens(f"resid_post.{N - 1}"), acts.tokens(f"hidden.{N}")
    with torch.inference_mode():
        normed_last = lm.model.get_submodule(a.family.final_norm)(raw_last)
    normed_diff = max_abs_diff(normed_last, hidden_last)
    final = {
        "raw_max_abs_diff": max_abs_diff(raw_last, hidden_last),
        "normed_max_abs_diff": normed_diff,
        "normed_relative_diff": normed_diff / max(float(hidden_last.abs().max()), 1e-30),
        "raw_max_abs": float(raw_last.abs().max()),
        "normed_max_abs": float(hidden_last.abs().max()),
        "tolerance": tolerance(hidden_last),
    }
    measured = measure_hidden_map(acts, N)
    ok = (
        all(row["site"] is not None for row in measured)
        and all(row["max_abs_diff"] <= tolerance(acts.tokens(f"hidden.{row['hidden_index']}")) for row in layers[:-1])
        and normed_diff <= final["tolerance"]
    )
    return {
        "model": lm.spec,
        "architecture": a.model_type,
        "family": a.family.name,
        "n_layers": N,
        "final_norm_module": a.family.final_norm,
        "dtype": lm.info.get("dtype"),
        "n_tokens": int(batch["attention_mask"].sum()),
        "layers": layers,
        "final": final,
        "hidden_state_map": {str(row["index"]): row["site"] for row in measured},
        "hidden_state_map_detail": measured,
        "ok": bool(ok),
    }
