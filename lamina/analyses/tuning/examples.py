"""The example texts of a tuning run: the best neuron of the most strongly tuned layers, read token by token
over the sample texts where it is highest and lowest (the data of the HTML token heatmaps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamina.analyses.tuning.contrasts import SampleSet


def token_heatmaps(source, samples: SampleSet, laminar: pd.DataFrame, acts: dict, site: str,
                   n_neurons: int = 4, n_texts: int = 4, max_tokens: int = 48) -> list[dict]:
    """Activations of the best neuron of the most strongly tuned layers over a few sample texts.

    `source`: the `ActivationSource` the activations come from (the model or a store); `acts`: the samples'
    activations it gave. Texts: those holding the samples where
    the neuron is highest and lowest (with their pair partners in a paired design).
    Returns [{neuron, layer, index, scale, texts: [{group, tokens, values, read}]}].
    """
    ranked = laminar.sort_values(["n_significant", "layer"], ascending=[False, True]).head(n_neurons)
    picks = [(int(r.layer), int(r.best_neuron)) for r in ranked.itertuples()]
    if not picks:
        return []
    rows = samples.rows
    out = []
    for L, i in picks:
        v = acts[f"{site}.{L}"][:, i]  # the neuron at every sample
        order = np.argsort(-v)
        chosen = list(dict.fromkeys([int(rows["text"].iat[j]) for j in order[: n_texts // 2]]
                                    + [int(rows["text"].iat[j]) for j in order[::-1][: n_texts // 2]]))
        if samples.paired:
            partner = {int(t): int(u) for t, u in zip(rows["text"], rows.groupby("pair")["text"].transform(
                lambda s: s.iloc[::-1].to_numpy()))}
            chosen = list(dict.fromkeys(x for t in chosen for x in (t, partner[t])))
        items = []
        for t, (ids, values) in zip(chosen, source.token_values(samples, chosen, f"{site}.{L}", i)):
            read = {p for s in rows.index[rows["text"] == t] for p in rows["positions"].iat[s]}
            lo = max(0, min(read, default=0) - max_tokens + 8) if read and max(read) >= max_tokens else 0
            keep = range(lo, min(len(ids), lo + max_tokens))
            mine = rows[rows["text"] == t]
            group = ", ".join(sorted(set(mine["group"].astype(str)) - {""})) or \
                f"{samples.label_name} {', '.join(f'{v:g}' for v in mine['label'].head(3))}..."
            items.append({"group": group,
                          "tokens": [source.tokenizer.decode([ids[p]]) for p in keep],
                          "values": [float(values[p]) for p in keep],
                          "read": [p in read for p in keep]})
        shown = np.abs([x for it in items for x in it["values"]])
        out.append({"neuron": f"{site}.{L}:{i}", "layer": L, "index": i, "texts": items,
                    "scale": float(np.nanmax(shown)) if shown.size and np.nanmax(shown) > 0 else 1.0})
    return out
