"""Next-token metrics of edits, with intervals: clean against edited on the same windows.

    edit_metrics(lm, [edit, ...], docs)   -> loss / perplexity clean vs edited, KL, intervals

Metrics count real tokens only: the loss at position t predicts token t+1 and enters when token t+1 is
counted by the window's count mask (no padding, no token twice); with `skip_first` the prediction made at
position 0 (from a single token of context) is left out too. Intervals are 95% bootstrap intervals over
documents (the unit of replication), seeded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from lamina.analyses.causal.interventions import spread_windows
from lamina.capture import run_capture
from lamina.data.windows import batches, pad_id
from lamina.edits import bind_all
from lamina.errors import InputError
from lamina.sites import Site


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor, count: torch.Tensor, skip_first: bool):
    """(log-probs [b, t-1, vocab], next-token loss [b, t-1], counted mask [b, t-1]) of one batch."""
    logp = torch.log_softmax(logits[:, :-1].float().nan_to_num(), -1)
    nll = -logp.gather(-1, input_ids[:, 1:, None].to(logp.device))[..., 0]
    counted = count[:, 1:].clone().to(logp.device)
    if skip_first:
        counted[:, 0] = False
    return logp, nll, counted


def final_logits(lm, batch: dict, edits=()) -> torch.Tensor:
    """Next-token logits after each text's last real token [texts, vocab], under bound `edits`.

    Reads the final norm's output (early stop there) and applies the unembedding to the last tokens only."""
    batch = lm.inputs(batch["input_ids"], batch["attention_mask"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    h = run_capture(lm.model, lm.anatomy, ids, mask, [Site("final_norm")], edits=edits)["final_norm"]
    h = h[torch.arange(len(ids)), mask.sum(1) - 1]                          # [texts, d_model]
    with torch.inference_mode():
        return lm.model.get_submodule(lm.anatomy.family.unembed)(h)


def kl(logp_p: torch.Tensor, logp_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last dim, from log-probabilities."""
    return (logp_p.exp() * (logp_p - logp_q)).sum(-1)


def bootstrap_ratio(sums: np.ndarray, counts: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float, float]:
    """sum(sums) / sum(counts) and its percentile bootstrap interval over units (rows), seeded."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    value = sums.sum() / counts.sum()
    if len(sums) < 2:
        return float(value), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(sums), (n_boot, len(sums)))
    boots = sums[idx].sum(1) / np.maximum(counts[idx].sum(1), 1e-12)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(value), float(lo), float(hi)


@dataclass
class AblationResult:
    settings: dict
    per_doc: object            # DataFrame: doc, n_tokens, loss_clean, loss_edited, kl (sums)
    summary: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {**self.settings, **self.summary}


def edit_metrics(lm, edits, docs, context: int = 128, max_tokens: int | None = 20000, batch_size: int = 8,
                 skip_first: bool = False, seed: int = 0, n_boot: int = 1000, progress: bool = False,
                 settings: dict | None = None) -> AblationResult:
    """Next-token loss, perplexity and KL(clean || edited) on `docs`, clean against edited, per document."""
    import pandas as pd

    bound = bind_all(lm, edits)
    windows = spread_windows(lm, docs, context=context, max_tokens=max_tokens)
    logits_site = [Site("logits")]
    sums: dict[int, np.ndarray] = {}
    for batch in tqdm(list(batches(windows, batch_size, pad_id(lm.tokenizer), skip_first)),
                      desc="ablate", disable=not progress, leave=False):
        moved = lm.inputs(batch.input_ids, batch.attention_mask)   # the same inputs for both passes
        ids, mask = moved["input_ids"], moved["attention_mask"]
        clean = run_capture(lm.model, lm.anatomy, ids, mask, logits_site)["logits"]
        edited = run_capture(lm.model, lm.anatomy, ids, mask, logits_site, edits=bound)["logits"]
        lp_c, nll_c, counted = token_losses(clean, ids, batch.count, skip_first)
        lp_e, nll_e, _ = token_losses(edited, ids, batch.count, skip_first)
        div = kl(lp_c, lp_e)
        for b, w in enumerate(batch.windows):
            c = counted[b]
            row = np.array([float(c.sum()), float(nll_c[b][c].sum()), float(nll_e[b][c].sum()), float(div[b][c].sum())])
            sums[w.doc] = sums.get(w.doc, 0) + row
    per_doc = pd.DataFrame([[d, *v] for d, v in sorted(sums.items())],
                           columns=["doc", "n_tokens", "loss_clean", "loss_edited", "kl"])
    if per_doc.n_tokens.sum() == 0:
        raise InputError("no counted token to score: give a longer corpus or more --max-tokens")
    n = per_doc.n_tokens.to_numpy()
    base = bootstrap_ratio(per_doc.loss_clean, n, n_boot, seed)
    abl = bootstrap_ratio(per_doc.loss_edited, n, n_boot, seed)
    delta = bootstrap_ratio(per_doc.loss_edited - per_doc.loss_clean, n, n_boot, seed)
    div = bootstrap_ratio(per_doc.kl, n, n_boot, seed)
    summary = {
        "n_tokens": int(n.sum()), "n_docs": len(per_doc),
        "baseline": {"loss": base[0], "perplexity": math.exp(base[0])},
        "ablated": {"loss": abl[0], "perplexity": math.exp(abl[0])},
        "delta_loss": {"value": delta[0], "low": delta[1], "high": delta[2]},
        "kl": {"value": div[0], "low": div[1], "high": div[2]},
        "interval": f"95% bootstrap over documents, {n_boot} resamples, seed {seed}",
    }
    return AblationResult(dict(settings or {}), per_doc, summary)
