"""The laminar profile: per-layer statistics of one site kind over a corpus, streamed in constant memory.

`method="hooks"` reads every layer with forward hooks (the raw residual stream for resid_post);
`method="hidden-states"` reads `output.hidden_states[L+1]` for layer L, whose last entry is after the final
norm: that row is labelled normalized, and the raw last block (`resid_post.N-1` by hook) is profiled beside
it so that both readings of the last layer appear side by side.

Massive activations (Sun et al. 2024): |x| > 100 and > 1000 x the layer's median |x|, located by
dimension, document, position and token.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina.analyses.layer_stats import LayerStats
from lamina.data.corpus import Document, fingerprint
from lamina.data.windows import batches, corpus_windows, split_row_id
from lamina.errors import InputError

PROFILE_KINDS = ("resid_post", "resid_pre", "resid_mid", "attn_out", "mlp_out", "mlp_post", "mlp_pre", "q", "k", "v")
MASSIVE_ABS, MASSIVE_RATIO = 100.0, 1000.0


@dataclass
class ProfileResult:
    table: pd.DataFrame            # one row per layer reading
    dim_max_abs: np.ndarray        # [readings, d] max |x| per dimension
    massive: pd.DataFrame          # massive activations: reading, layer, dim, value, doc, position, token
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"settings": self.settings, "layers": self.table.to_dict(orient="records"),
                "massive_activations": self.massive.to_dict(orient="records")}


def _readings(lm, kind: str, method: str) -> list[tuple[str, int, str]]:
    """(label, layer, site) for each row of the profile."""
    N = lm.n_layers
    if method == "hooks":
        return [(f"{kind}.{L}", L, f"{kind}.{L}") for L in range(N)]
    if kind != "resid_post":
        raise InputError("--method hidden-states reads the residual stream only: use --kind resid_post")
    rows = [(f"hidden.{L + 1}", L, f"hidden.{L + 1}") for L in range(N)]
    rows[-1] = (f"hidden.{N} (after final norm)", N - 1, f"hidden.{N}")
    return rows + [(f"resid_post.{N - 1} (raw, by hook)", N - 1, f"resid_post.{N - 1}")]


def profile(lm, docs: list[Document], kind: str = "resid_post", method: str = "hooks", context: int = 128,
            stride: int | None = None, batch_size: int = 8, skip_first: bool = False, pack: bool = False,
            max_tokens: int | None = None, progress: bool = True) -> ProfileResult:
    """Stream the corpus through the model once and profile every layer of `kind`."""
    if kind not in PROFILE_KINDS:
        raise InputError(f"cannot profile '{kind}'; choose one of {', '.join(PROFILE_KINDS)}")
    if method not in ("hooks", "hidden-states"):
        raise InputError(f"unknown --method '{method}'; choose hooks or hidden-states")
    lm.sites([kind])  # unknown on this architecture -> SiteError
    readings = _readings(lm, kind, method)
    sites = [site for _, _, site in readings]
    stats = [LayerStats(seed=i) for i in range(len(readings))]
    windows = corpus_windows(lm, docs, context, stride, pack, max_tokens)
    n_batches = -(-len(windows) // batch_size)
    for batch in tqdm(batches(windows, batch_size, lm.tokenizer.pad_token_id, skip_first), total=n_batches,
                      desc=f"profile {kind}", unit="batch", disable=not progress):
        acts = lm.capture(lm.inputs(batch.input_ids, batch.attention_mask), sites)
        everything = bool(batch.count.all())  # full windows: flat views, no copies
        rows = batch.row_ids.flatten() if everything else batch.row_ids[batch.count]
        for stat, site in zip(stats, sites):
            x = acts[site].cpu()  # the statistics run on the CPU, beside the row ids (no copy when already there)
            stat.update(x.flatten(0, 1).flatten(1) if everything else x[batch.count].flatten(1), rows)

    token_ids = [None] * len(docs)  # tokenized lazily, only for documents holding a massive activation
    table, massive = [], []
    for (label, layer, site), stat in zip(readings, stats):
        row = stat.result()
        top = row.pop("top")
        row.pop("median_sample_size")
        threshold = max(MASSIVE_ABS, MASSIVE_RATIO * row["median_abs"])
        hits = [t for t in top if abs(t["value"]) > threshold]
        for t in hits:
            doc, position = split_row_id(t["row"])
            if token_ids[doc] is None:
                token_ids[doc] = lm.tokenizer(docs[doc].text)["input_ids"] if not pack else []
            ids = token_ids[doc]
            token = lm.tokenizer.decode([ids[position]]) if position < len(ids) else "?"
            massive.append({"reading": label, "layer": layer, "dim": t["dim"], "value": t["value"],
                            "doc": docs[doc].id if not pack else "packed", "position": position, "token": token})
        table.append({"reading": label, "layer": layer, "site": site,
                      "normalized": label.endswith("(after final norm)"), **row,
                      "n_massive_in_top16": len(hits),
                      "massive_dims": sorted({t["dim"] for t in hits})})
    settings = {"model": lm.spec, "kind": kind, "method": method, "context": context, "stride": stride or context,
                "batch_size": batch_size, "skip_first": skip_first, "pack": pack, "max_tokens": max_tokens,
                "n_windows": len(windows), "corpus": fingerprint(docs)[:16], "n_docs": len(docs),
                "massive_rule": f"|x| > {MASSIVE_ABS:g} and > {MASSIVE_RATIO:g} x median |x| of the layer"}
    dim_max = np.stack([s.dim_max_abs.numpy() for s in stats])
    columns = ["reading", "layer", "dim", "value", "doc", "position", "token"]
    return ProfileResult(pd.DataFrame(table), dim_max, pd.DataFrame(massive, columns=columns), settings)
