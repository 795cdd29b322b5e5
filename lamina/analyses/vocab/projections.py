"""Vocabulary projections: which tokens a neuron writes towards, and which tokens drive it.

An MLP neuron `mlp_post.L:i` adds `a_i * w_out[i]` to the residual stream (mlp_out = W_down @ mlp_post),
so `w_out[i] @ W_U^T` says which next tokens it promotes (high) and suppresses (low). Two views:
    raw:                      w_out @ W_U^T
    with final norm weight:   (w_out * g) @ W_U^T, g the final norm's gain (weight, or 1 + weight in
                              Gemma). The norm also divides by a per-token scale, so this view is the
                              direction only, never a logit.
Input side: the neuron's input vector (c_fc column / up row; gate and up separately for gated MLPs) and
a Q/K/V neuron's projection row, dotted with the embedding matrix W_E: which tokens drive it. These skip
the block's input norm, so they too are directions.

Weight layouts differ: transformers' Conv1D (GPT-2) stores weight as [in, out], nn.Linear as [out, in];
`models.language_model.projection_weight` turns both into [out, in].
"""
from __future__ import annotations

import warnings

import pandas as pd
import torch

from lamina import validate
from lamina.errors import InputError, SiteError, UnsupportedArchitectureError
from lamina.models.language_model import check_neuron_index, projection_weight

NORM_NOTE = "with final norm weight: direction only; the norm's per-token scale is not included"


def _out_in(module: torch.nn.Module) -> torch.Tensor:
    """A projection's weight as [out, in] in float32, whatever the module stores."""
    return projection_weight(module).detach().float()


def norm_gain(module: torch.nn.Module, d_model: int, samples: int = 64) -> torch.Tensor:
    """A norm's per-coordinate gain g [d_model], measured: norm(x) = x / rms(x) * g + b for zero-mean x.

    Measured from the module's outputs rather than read from `.weight`, because conventions differ
    (Gemma's norms multiply by 1 + weight). For zero-mean x, LayerNorm and RMSNorm normalise alike.
    """
    p = next(module.parameters(), None)  # None: a norm without weights (OLMo 1), measured as a gain of 1
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    x = torch.randn(samples, d_model, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x - x.mean(-1, keepdim=True)
    n = x / x.pow(2).mean(-1, keepdim=True).sqrt()                         # zero mean, rms 1 [samples, d]
    with torch.no_grad():
        y = module((100 * n).to(device, dtype)).double().cpu()              # rms 100: eps is negligible
    n, y = n - n.mean(0), y - y.mean(0)                                     # the bias b drops out
    return ((n * y).sum(0) / (n * n).sum(0)).float().to(device)            # least squares, per coordinate


def norm_weight(lm) -> torch.Tensor:
    """The final norm's gain [d_model] (its bias and per-token scale are not part of a direction)."""
    return norm_gain(lm.model.get_submodule(lm.anatomy.family.final_norm), lm.anatomy.d_model)


def output_vectors(lm, layer: int) -> torch.Tensor:
    """[n_neurons, d_model]: row i is the direction neuron mlp_post.layer:i writes to the residual.

    Post-norm blocks (Gemma 2, OLMo 2: `mlp_out_norm`) normalise the MLP's output before adding it; there
    the column is multiplied by that norm's gain (its per-token scale is shared by all neurons).
    """
    a = lm.anatomy
    w = _out_in(lm.model.get_submodule(f"{a.block(layer)}.{a.family.mlp_down}")).T  # [n_neurons, d_model]
    post = getattr(a.family, "mlp_out_norm", "")
    if post:
        w = w * norm_gain(lm.model.get_submodule(f"{a.block(layer)}.{post}"), a.d_model)
    return w


def input_vectors(lm, layer: int) -> dict[str, torch.Tensor]:
    """{"in"} or {"gate", "up"} -> [n_neurons, d_model]: the rows each MLP neuron reads the residual with."""
    block, out = lm.anatomy.block(layer), {}
    if not lm.anatomy.family.mlp_in:
        raise UnsupportedArchitectureError(
            f"family '{lm.anatomy.family.name}' has no mlp_in paths; add them to its table in "
            "lamina/anatomy/families.py")
    for role, path in lm.anatomy.family.mlp_in.items():
        w = _out_in(lm.model.get_submodule(f"{block}.{path}"))
        if role == "gate_up":          # fused [gate | up] (Phi-3)
            out["gate"], out["up"] = w.chunk(2, dim=0)
        else:
            out[role] = w
    return out


def qkv_vectors(lm, kind: str, layer: int) -> torch.Tensor:
    """[heads * d_head, d_model]: the projection row behind each flat neuron `q.L:h*d_head+j`.

    The rows are found by pushing the output-feature indices through the same head split that capture
    uses, so index h*d_head+j here is exactly `acts["q.L"][..., h, j]`, fused layouts included.
    """
    a = lm.anatomy
    path = a.family.sites["qkv" if "qkv" in a.family.sites else kind][0]
    w = _out_in(lm.model.get_submodule(f"{a.block(layer)}.{path}"))              # [out, d_model]
    rows = a.split_heads(kind, torch.arange(w.shape[0], device=w.device)).flatten()  # [heads * d_head]
    return w[rows]


def output_scores(lm, vectors: torch.Tensor, with_norm_weight: bool = False) -> torch.Tensor:
    """[n, d_model] output vectors -> [n, vocab] scores against W_U (see the module docstring)."""
    if with_norm_weight:
        vectors = vectors * norm_weight(lm)
    return vectors @ lm.unembedding_matrix().T


def _top_rows(lm, scores: torch.Tensor, k: int, names: tuple[str, str]) -> list[dict]:
    """Top-k and bottom-k tokens of one [vocab] score vector, as table rows."""
    rows = []
    for direction, largest in zip(names, (True, False)):
        values, ids = scores.topk(min(k, scores.numel()), largest=largest)
        for rank, (v, i) in enumerate(zip(values.tolist(), ids.tolist()), start=1):
            rows.append({"direction": direction, "rank": rank, "token_id": i,
                         "token": lm.tokenizer.decode([i]), "score": v})
    return rows


def project(lm, neuron: str, k: int = 20) -> pd.DataFrame:
    """Top-k promoted/suppressed tokens of an MLP neuron, and the tokens that drive an MLP or Q/K/V neuron.

    Columns: neuron, side ("output" | "input"), view, direction, rank, token_id, token, score.
    """
    from lamina.models.registry import as_model

    lm = as_model(lm)
    k = validate.integer("k", k)
    site, index = lm.neuron(neuron)
    name = f"{site.name}:{index}"
    with torch.no_grad():
        if site.kind == "mlp_post":
            w_out = output_vectors(lm, site.layer)                                # [n, d]
            check_neuron_index(site, index, w_out.shape[0])
            views = [("output", "raw", output_scores(lm, w_out[index:index + 1])[0]),
                     ("output", "with final norm weight", output_scores(lm, w_out[index:index + 1], True)[0])]
            if lm.anatomy.family.mlp_in:  # families whose table names the MLP's input projections
                views += [("input", role, w[index] @ lm.embedding_matrix().T)
                          for role, w in input_vectors(lm, site.layer).items()]
            else:
                warnings.warn(f"no input side for {lm.anatomy.family.name}: its family table has no mlp_in",
                              stacklevel=2)
        elif site.kind in ("q", "k", "v"):
            rows = qkv_vectors(lm, site.kind, site.layer)                         # [heads * d_head, d]
            check_neuron_index(site, index, rows.shape[0])
            views = [("input", site.kind, rows[index] @ lm.embedding_matrix().T)]
        else:
            raise SiteError(f"{site.name} has no vocabulary projection; give an mlp_post, q, k or v neuron, "
                            f"e.g. mlp_post.{site.layer or 0}:0")
    records = []
    for side, view, scores in views:                                             # scores: [vocab]
        names = ("promoted", "suppressed") if side == "output" else ("excites", "inhibits")
        for row in _top_rows(lm, scores, k, names):
            records.append({"neuron": name, "side": side, "view": view, **row})
    df = pd.DataFrame.from_records(records)
    df.attrs["note"] = NORM_NOTE
    return df


def category_tokens(lm, words: list[str]) -> pd.DataFrame:
    """Each word's token, tokenised with a leading space; words split into several tokens use the first."""
    words = [w.strip() for w in words if w.strip()]
    if not words:
        raise InputError("no words given: category_projection needs at least one word")
    rows = []
    for word in words:
        ids = lm.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        rows.append({"word": word, "token_id": ids[0], "token": lm.tokenizer.decode([ids[0]]), "n_tokens": len(ids)})
    table = pd.DataFrame(rows)
    split = table[table["n_tokens"] > 1]
    if len(split):
        warnings.warn(f"{len(split)} word(s) split into several tokens; using the first token of: "
                      + ", ".join(f"{w!r} -> {t!r}" for w, t in zip(split["word"], split["token"])), stacklevel=3)
    return table


def category_projection(lm, words: list[str], layer: int, k: int = 20, with_norm_weight: bool = False,
                        chunk: int = 256) -> pd.DataFrame:
    """The neurons of `layer` that most promote a word list: mean score of its tokens minus the vocabulary mean.

    Columns: rank, neuron (SITE:INDEX), layer, index, score, zscore (score over the neuron's std over the
    vocabulary). `df.attrs["words"]` holds each word's token and `df.attrs["split_words"]` the words that
    the tokenizer split (their first token is used; a warning says so too).
    """
    if not -lm.n_layers <= layer < lm.n_layers:
        raise SiteError(f"layer {layer} is out of range; this model has layers 0-{lm.n_layers - 1}")
    layer %= lm.n_layers
    words_table = category_tokens(lm, words)
    ids = torch.tensor(sorted(set(words_table["token_id"])))                    # unique tokens of the list
    with torch.no_grad():
        w_out = output_vectors(lm, layer)                                          # [n, d]
        parts = []
        for start in range(0, w_out.shape[0], chunk):
            scores = output_scores(lm, w_out[start:start + chunk], with_norm_weight)  # [c, vocab]
            lift = scores[:, ids.to(scores.device)].mean(-1) - scores.mean(-1)     # [c]
            parts.append(torch.stack([lift, lift / scores.std(-1)], dim=-1))
        result = torch.cat(parts).cpu()                                            # [n, 2]
    order = result[:, 0].argsort(descending=True)[:k]
    df = pd.DataFrame({
        "rank": range(1, len(order) + 1),
        "neuron": [f"mlp_post.{layer}:{i}" for i in order.tolist()],
        "layer": layer,
        "index": order.tolist(),
        "score": result[order, 0].tolist(),
        "zscore": result[order, 1].tolist(),
    })
    df.attrs["words"] = words_table.to_dict(orient="records")
    df.attrs["split_words"] = words_table.loc[words_table["n_tokens"] > 1, "word"].tolist()
    return df
