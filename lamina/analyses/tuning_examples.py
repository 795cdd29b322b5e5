"""The example texts of a tuning run: the best neuron of the most strongly tuned layers, read token by token
over the sample texts where it is highest and lowest (the data of the HTML token heatmaps)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamina.analyses.contrasts import SampleSet


def token_heatmaps(lm, samples: SampleSet, laminar: pd.DataFrame, acts: dict, site: str,
                   n_neurons: int = 4, n_texts: int = 4, max_tokens: int = 48) -> list[dict]:
    """Activations of the best neuron of the most strongly tuned layers over a few sample texts.

    `acts` are the sample activations of `gather_activations`. Texts: those holding the samples where
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
        texts = [samples.texts[t] for t in chosen]
        enc = lm.tokenizer(texts, padding=True, truncation=True, max_length=samples.max_length, return_tensors="pt")
        captured = lm.capture(lm.inputs(enc["input_ids"], enc["attention_mask"]), [f"{site}.{L}"])
        a = captured[f"{site}.{L}"].flatten(2)[..., i].float().cpu().numpy()
        items = []
        for b, t in enumerate(chosen):
            real = enc["attention_mask"][b].nonzero().flatten().numpy()
            ids = enc["input_ids"][b, real].tolist()
            read = {p for s in rows.index[rows["text"] == t] for p in rows["positions"].iat[s]}
            lo = max(0, min(read, default=0) - max_tokens + 8) if read and max(read) >= max_tokens else 0
            keep = range(lo, min(len(ids), lo + max_tokens))
            mine = rows[rows["text"] == t]
            group = ", ".join(sorted(set(mine["group"].astype(str)) - {""})) or \
                f"{samples.label_name} {', '.join(f'{v:g}' for v in mine['label'].head(3))}..."
            items.append({"group": group,
                          "tokens": [lm.tokenizer.decode([ids[p]]) for p in keep],
                          "values": [float(a[b, real[p]]) for p in keep],
                          "read": [p in read for p in keep]})
        shown = np.abs([x for it in items for x in it["values"]])
        out.append({"neuron": f"{site}.{L}:{i}", "layer": L, "index": i, "texts": items,
                    "scale": float(np.nanmax(shown)) if shown.size and np.nanmax(shown) > 0 else 1.0})
    return out
