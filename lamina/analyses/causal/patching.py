"""Activation patching: run the clean input, overwrite one (layer, position) of a site kind with the
corrupted input's value, and measure the output at the final token. Many patches share one forward pass.

    clean    ──► batch of B copies of the clean input; row i gets patch i: (layer_i, position_i)
    corrupt  ──► one capture of the site at every layer (the values patched in)
    each layer's Edit writes only the rows whose patch is at that layer, at that row's position

Metrics at the clean text's final token: `logit-diff` = logit[target_a] - logit[target_b] (normalised:
(patched - clean) / (corrupt - clean)), or `kl` = KL(corrupt || patched) (normalised: 1 - KL(corrupt ||
patched) / KL(corrupt || clean)). Both normalised effects are 0 for no change and 1 for the corrupt output.

Texts of different lengths are aligned only when asked (`align="edit"`): tokens of the common prefix and the
common suffix map to each other, the edited span of the clean text is not patched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lamina.analyses.causal.metrics import final_logits
from lamina.edits import Edit, bind_all
from lamina.errors import InputError

METRICS = ("logit-diff", "kl")


def align_positions(clean: list[int], corrupt: list[int], align: str, name: str = "the pair") -> list[int | None]:
    """For each clean position, the corrupt position whose value is patched in (None: not patched)."""
    n, m = len(clean), len(corrupt)
    if n == m:
        return list(range(n))
    if align != "edit":
        raise InputError(f"{name}: the clean text has {n} tokens and the corrupt one {m}; patching needs equal "
                         "lengths (or --align edit to align their common prefix and suffix)")
    a = 0
    while a < min(n, m) and clean[a] == corrupt[a]:
        a += 1
    s = 0
    while s < min(n, m) - a and clean[n - 1 - s] == corrupt[m - 1 - s]:
        s += 1
    return [p if p < a else (p - n + m if p >= n - s else None) for p in range(n)]


@dataclass
class PatchResult:
    layers: list[int]
    positions: list[int]          # clean-text positions (one pair) or positions from the end (-1 = last)
    effect: np.ndarray            # [layers, positions] normalised effect (NaN: not patched)
    raw: np.ndarray               # [layers, positions] metric of the patched run
    clean: float                  # metric of the clean run (mean over pairs)
    corrupt: float
    settings: dict
    tokens: list[str] | None = None  # the clean text's tokens (one pair)

    def to_json(self) -> dict:
        nan = lambda a: [[None if np.isnan(v) else float(v) for v in row] for row in a]  # noqa: E731
        return {**self.settings, "layers": self.layers, "positions": self.positions, "tokens": self.tokens,
                "clean": self.clean, "corrupt": self.corrupt, "effect": nan(self.effect), "raw": nan(self.raw)}


def _metric(logits: torch.Tensor, metric: str, targets, corrupt_logp: torch.Tensor | None) -> torch.Tensor:
    """[rows, vocab] final-token logits -> [rows]."""
    if metric == "logit-diff":
        return logits[:, targets[0]] - logits[:, targets[1]]
    logp = torch.log_softmax(logits.float(), -1)
    p = corrupt_logp.exp()
    return (p * (corrupt_logp - logp)).sum(-1)


def patch_pair(lm, clean: str, corrupt: str, kind: str = "resid_pre", layers=None, metric: str = "kl",
               targets=None, align: str = "exact", batch_size: int = 32, name: str = "the pair",
               progress: bool = False) -> PatchResult:
    """The layer x position sweep for one pair (see module docstring); `batch_size` patches per pass."""
    if metric not in METRICS:
        raise InputError(f"unknown patching metric '{metric}'; choose one of {', '.join(METRICS)}")
    if metric == "logit-diff" and (targets is None or len(targets) != 2):
        raise InputError("the logit-diff metric needs two target tokens (--target-a and --target-b)")
    layers = list(range(lm.n_layers)) if layers is None else list(layers)
    sites = lm.sites([f"{kind}.{L}" for L in layers])
    enc_c, enc_r = lm.encode(clean), lm.encode(corrupt)                # token ids on the host
    where = align_positions(enc_c["input_ids"][0].tolist(), enc_r["input_ids"][0].tolist(), align, name)
    ids_c, ids_r = lm.inputs(**enc_c), lm.inputs(**enc_r)
    acts = lm.capture(ids_r, sites)                                   # corrupt values at every layer
    lc, lr = final_logits(lm, ids_c), final_logits(lm, ids_r)
    corrupt_logp = torch.log_softmax(lr.float(), -1) if metric == "kl" else None
    m_clean = float(_metric(lc, metric, targets, corrupt_logp)[0])
    m_corrupt = float(_metric(lr, metric, targets, corrupt_logp)[0])
    n = len(where)
    cells = [(i, p) for i in range(len(layers)) for p in range(n) if where[p] is not None]
    raw = np.full((len(layers), n), np.nan)
    for start in tqdm(range(0, len(cells), batch_size), desc="patch", disable=not progress, leave=False):
        chunk = cells[start:start + batch_size]
        b = len(chunk)
        batch = {k: v.expand(b, -1) for k, v in ids_c.items()}
        edits = []
        for i in sorted({c[0] for c in chunk}):
            source = acts[sites[i].name][0].flatten(1)                # [corrupt tokens, width]
            mask = torch.zeros(b, n, dtype=torch.bool)
            value = torch.zeros(b, n, source.shape[-1], dtype=source.dtype)
            for row, (j, p) in enumerate(chunk):
                if j == i:
                    mask[row, p] = True
                    value[row, p] = source[where[p]]
            edits.append(Edit(sites[i], "set", positions=mask, value=value))
        out = _metric(final_logits(lm, batch, bind_all(lm, edits)), metric, targets, corrupt_logp)
        for row, (i, p) in enumerate(chunk):
            raw[i, p] = float(out[row])
    if metric == "kl":
        effect = 1 - raw / m_clean if m_clean > 0 else np.full_like(raw, np.nan)
    else:
        denom = m_corrupt - m_clean
        effect = (raw - m_clean) / denom if abs(denom) > 1e-9 else np.full_like(raw, np.nan)
    tokens = lm.tokenizer.convert_ids_to_tokens(enc_c["input_ids"][0].tolist())
    settings = {"model": lm.spec, "kind": kind, "metric": metric, "targets": list(targets) if targets else None,
                "align": align, "n_pairs": 1, "aligned": len(ids_c["input_ids"][0]) != len(ids_r["input_ids"][0])}
    return PatchResult(layers, list(range(n)), effect, raw, m_clean, m_corrupt, settings, tokens)


def patch_pairs(lm, pairs, kind: str = "resid_pre", layers=None, metric: str = "kl", targets=None,
                align: str = "exact", batch_size: int = 32, last: int | None = None,
                progress: bool = True) -> PatchResult:
    """Mean over pairs of the sweep, positions counted from the end of the clean text (-1 = final token)."""
    if not pairs:
        raise InputError("the pairs file holds no pair")
    per_pair = []
    for k, (clean, corrupt, *tg) in enumerate(tqdm(pairs, desc="pairs", disable=not progress)):
        r = patch_pair(lm, clean, corrupt, kind, layers, metric, tg or targets, align, batch_size,
                       name=f"pair {k + 1} ({clean[:40]!r})")
        per_pair.append(r)
    width = last or min(len(r.positions) for r in per_pair)
    stack = lambda f: np.stack([f(r)[:, -width:] for r in per_pair])  # noqa: E731
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN cells (never patched) stay NaN
        effect, raw = np.nanmean(stack(lambda r: r.effect), 0), np.nanmean(stack(lambda r: r.raw), 0)
    first = per_pair[0]
    settings = {**first.settings, "n_pairs": len(pairs), "aligned": sum(r.settings["aligned"] for r in per_pair)}
    return PatchResult(first.layers, list(range(-width, 0)), effect, raw,
                       float(np.mean([r.clean for r in per_pair])), float(np.mean([r.corrupt for r in per_pair])),
                       settings)
