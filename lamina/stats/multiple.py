"""Multiple testing over a stated family (each layer, or the whole model): BH FDR and Bonferroni."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests

METHOD_NAMES = {"fdr_bh": "BH FDR", "bonferroni": "Bonferroni"}


@dataclass
class CorrectedPValues:
    """Multiple-testing-corrected p-values (same shape as the input) and the family they used."""

    p_adjusted: np.ndarray
    reject: np.ndarray
    method: str
    family: str
    alpha: float
    family_sizes: dict
    family_description: str


def correct_pvalues(p, method: str = "fdr_bh", family: str = "layer", layer_index=None,
                    alpha: float = 0.05) -> CorrectedPValues:
    """Correct p-values (BH FDR or Bonferroni) over a stated family: each layer, or the whole model.

    ``p`` may be 1-D (then ``layer_index``, same length, gives each neuron's layer when
    ``family='layer'``) or 2-D ``[n_layers, n_neurons]`` (rows are layers unless ``layer_index``
    is given). NaN p-values are left out of every family and stay NaN (reject=False).
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(METHOD_NAMES)}; got {method!r}")
    if family not in ("layer", "model"):
        raise ValueError(f"family must be 'layer' or 'model'; got {family!r}")
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if ((flat[ok] < 0) | (flat[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    if family == "model":
        groups = np.zeros(flat.size, dtype=int)
    elif layer_index is not None:
        groups = np.asarray(layer_index).ravel()
        if groups.size != flat.size:
            raise ValueError(f"layer_index has {groups.size} entries but p has {flat.size}")
    elif p.ndim == 2:
        groups = np.repeat(np.arange(p.shape[0]), p.shape[1])
    else:
        raise ValueError("family='layer' needs layer_index (or a 2-D p of [n_layers, n_neurons])")
    adjusted, reject = np.full(flat.size, np.nan), np.zeros(flat.size, dtype=bool)
    sizes = {}
    for g in np.unique(groups):
        idx = np.nonzero((groups == g) & ok)[0]
        sizes[g.item() if hasattr(g, "item") else g] = idx.size
        if idx.size:
            reject[idx], adjusted[idx], _, _ = multipletests(flat[idx], alpha=alpha, method=method)
    counts = sorted(set(sizes.values()))
    n_txt = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0] if counts else 0)
    scope = (f"neurons of each layer ({len(sizes)} layers)" if family == "layer"
             else "neurons of the whole model")
    desc = f"{METHOD_NAMES[method]} over {n_txt} {scope}, alpha={alpha:g}"
    return CorrectedPValues(adjusted.reshape(p.shape), reject.reshape(p.shape), method, family,
                            alpha, sizes, desc)


def count_significant(p: np.ndarray, alpha: float, method: str) -> int:
    return int(correct_pvalues(p, method=method, family="model", alpha=alpha).reject.sum())


