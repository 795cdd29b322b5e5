"""The hidden-state map, measured: which site `output.hidden_states[I]` equals on this model.

Hooks and `output_hidden_states` run in the same forward pass; each `hidden.I` is compared at every real
token with each candidate site (embed, every resid_post, final_norm). Nothing is assumed: for GPT-2 and
Llama the result is hidden.0 = embed, hidden.I = resid_post.(I-1) for I < N, hidden.N = final_norm.
"""
from __future__ import annotations

from lamina.anatomy.check import max_abs_diff, tolerance


def candidate_sites(n_layers: int) -> list[str]:
    """The sites a hidden state may equal: embed, every resid_post, final_norm."""
    return ["embed"] + [f"resid_post.{L}" for L in range(n_layers)] + ["final_norm"]


def measure_hidden_map(acts, n_layers: int) -> list[dict]:
    """For each hidden index: the matching site (or None), its max |diff|, and the tolerance used.

    `acts` (capture's Activations) must hold `hidden` (every index) and the candidate sites from one forward pass.
    """
    rows = []
    for index in range(n_layers + 1):
        hidden = acts.tokens(f"hidden.{index}")
        best_site, best_diff = None, float("inf")
        for site in candidate_sites(n_layers):
            diff = max_abs_diff(acts.tokens(site), hidden)
            if diff < best_diff:
                best_site, best_diff = site, diff
        tol = tolerance(hidden)
        rows.append({
            "index": index,
            "site": best_site if best_diff <= tol else None,
            "closest_site": best_site,
            "max_abs_diff": best_diff,
            "tolerance": tol,
        })
    return rows
