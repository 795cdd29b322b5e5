"""The logit lens: read every layer's residual stream through the model's own final norm and unembedding.

For block L the lens is `unembed(final_norm(resid_post.L))`, with `resid_post.L` the RAW block output
captured by a hook. It is never built from `output.hidden_states[-1]`: that tensor is already after the
final norm (hidden.N = final_norm, see `lamina verify`), and normalising it a second time is the mistake
several peer tools shipped. The check that proves it: at the last block the lens must equal the model's
own logits (to float32 round-off, 1e-5), so the last layer's KL to the final distribution is 0.

Memory stays bounded for long texts: the raw residuals [tokens, d_model] of every layer are kept, but the
vocabulary projection runs `chunk` positions at a time (512 by default), so one chunk's lens logits
[512, vocab] and its final log-probabilities are alive at once (100 MB each with a 50k vocabulary). The
forward pass stops before the unembedding: the final distribution is the model's own final-norm output
(`hidden.N`) through its unembedding, a chunk at a time, and the model's own logits [tokens, vocab] (1 GB at
5,000 tokens with a 49k vocabulary) are computed only for the first `HEAD_CHECK_TOKENS` positions, to check
that the unembedding is the model's. So two checks prove the lens at every run: at the last block the lens
equals the final-norm output's projection at every position (the norm is the model's), and that projection
equals the model's own logits on the prefix (the unembedding and soft-cap are the model's).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina import validate
from lamina.anatomy.check import max_abs_diff, tolerance
from lamina.errors import AnatomyCheckError
from lamina.memory import trim_heap

CHUNK_TOKENS = 512  # positions per vocabulary projection
HEAD_CHECK_TOKENS = 64  # positions on which the model's own logits are computed and compared

DEFAULT_TEXTS = [
    "The Eiffel Tower is in the city of Paris, the capital of France.",
    "She opened the door, looked at the rain, and went back to bed.",
]


@dataclass
class LogitLensResult:
    """`table`: one row per (layer, doc, position); `per_layer`: the means over tokens, per layer."""

    model: str
    texts: list[str]
    k: int
    table: pd.DataFrame         # layer, doc, position, token, kl, entropy, rank_of_final_top, top_tokens, top_probs
    per_layer: pd.DataFrame     # layer, kl, entropy, rank_of_final_top (mean and median), top1_agreement
    last_layer_max_abs_diff: float = 0.0  # max |lens(resid_post.(N-1)) - model logits|: must be ~0
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "n_texts": len(self.texts),
            "k": self.k,
            "last_layer_max_abs_diff": self.last_layer_max_abs_diff,
            "per_layer": self.per_layer.to_dict(orient="records"),
            **self.info,
        }


def softcap(lm, logits: torch.Tensor) -> torch.Tensor:
    """The model's final logit soft-capping (Gemma 2: cap * tanh(logits / cap)), applied after lm_head."""
    cap = getattr(lm.model.config, "final_logit_softcapping", None)
    return logits if not cap else torch.tanh(logits / cap) * cap


def lens_logits(lm, resid: torch.Tensor) -> torch.Tensor:
    """[..., d_model] raw residual -> [..., vocab] logits through the model's final norm and unembedding."""
    f = lm.anatomy.family
    norm, unembed = lm.model.get_submodule(f.final_norm), lm.model.get_submodule(f.unembed)
    with torch.inference_mode():
        return softcap(lm, unembed(norm(resid)))


def unembed_normed(lm, normed: torch.Tensor) -> torch.Tensor:
    """[..., d_model] output of the final norm -> [..., vocab] logits through the unembedding (and soft-cap)."""
    with torch.inference_mode():
        return softcap(lm, lm.model.get_submodule(lm.anatomy.family.unembed)(normed))


def _decoder(tokenizer):
    cache: dict[int, str] = {}

    def decode(i: int) -> str:
        if i not in cache:
            cache[i] = tokenizer.decode([i])
        return cache[i]

    return decode


def _layer_stats(logits: torch.Tensor, final_logp: torch.Tensor, p_final: torch.Tensor, final_top: torch.Tensor,
                 k: int) -> dict:
    """Per-token statistics of one layer's lens: logits [n, vocab] against the final distribution [n, vocab]."""
    logp = torch.log_softmax(logits.float(), dim=-1)                          # [n, vocab]
    kl = (p_final * (final_logp - logp)).sum(-1).clamp_min(0.0)               # KL(final || layer), nats [n]
    entropy = -(logp.exp() * logp).sum(-1)                                     # [n]
    at_top = logp.gather(-1, final_top[:, None])                               # [n, 1]
    rank = (logp > at_top).sum(-1) + 1                                         # 1 = the layer's own top-1 [n]
    top_logp, top_ids = logp.topk(k, dim=-1)                                   # [n, k]
    return {"kl": kl, "entropy": entropy, "rank": rank, "top_ids": top_ids, "top_p": top_logp.exp()}


def logit_lens(lm, texts: list[str] | None = None, k: int = 5, batch_size: int = 8,
               truncate: bool = False, chunk: int = CHUNK_TOKENS, progress: bool = True) -> LogitLensResult:
    """The logit lens over `texts`: per layer and position, KL(final || layer), entropy, rank, top-k tokens.

    Positions are read `chunk` tokens at a time, so memory stays bounded for long texts (a progress bar on
    stderr counts layer x chunk steps when there are several chunks)."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    k, batch_size = validate.integer("k", k), validate.integer("batch_size", batch_size)
    chunk = validate.integer("chunk", chunk)
    texts = list(texts or DEFAULT_TEXTS)
    decode = _decoder(lm.tokenizer)
    N = lm.n_layers
    frames, worst = [], 0.0
    for start in range(0, len(texts), batch_size):
        enc = lm.encode(texts[start:start + batch_size], truncate=truncate)    # on the host
        mask = enc["attention_mask"].bool()                                    # [b, t]
        docs, positions = mask.nonzero(as_tuple=True)                          # real tokens only, [n] each
        tokens = [decode(i) for i in enc["input_ids"][mask].tolist()]
        batch = lm.inputs(enc["input_ids"], enc["attention_mask"])
        acts = lm.capture(batch, [f"resid_post.{L}" for L in range(N)] + [f"hidden.{N}"], stop_early=False)
        normed = acts[f"hidden.{N}"]                                           # the model's final-norm output
        worst = max(worst, _check_head(lm, batch, normed))
        spans = [(i, min(i + chunk, len(tokens))) for i in range(0, len(tokens), chunk)]
        bar = tqdm(total=len(spans) * N, desc="logit lens", unit="layer", disable=not progress or len(spans) < 2)
        for lo, hi in spans:
            at = (docs[lo:hi], positions[lo:hi])                               # this chunk's tokens: no full copy
            final = unembed_normed(lm, normed[at]).float()                     # [c, vocab], the model's distribution
            final_logp = torch.log_softmax(final, dim=-1)                      # [c, vocab]
            p_final, final_top = final_logp.exp(), final_logp.argmax(-1)
            for layer in range(N):
                logits = lens_logits(lm, acts[f"resid_post.{layer}"][at]).float()  # [c, vocab]
                if layer == N - 1:
                    worst = max(worst, _check_last_layer(lm, logits, final))
                s = _layer_stats(logits, final_logp, p_final, final_top, k)
                frames.append(pd.DataFrame({
                    "layer": layer,
                    "doc": (docs[lo:hi] + start).tolist(),
                    "position": positions[lo:hi].tolist(),
                    "token": tokens[lo:hi],
                    "kl": s["kl"].tolist(),
                    "entropy": s["entropy"].tolist(),
                    "rank_of_final_top": s["rank"].tolist(),
                    "top_tokens": [[decode(i) for i in row] for row in s["top_ids"].tolist()],
                    "top_probs": s["top_p"].tolist(),
                }))
                del logits, s
                trim_heap()  # without it the heap fragments: RSS grows with the steps (lamina/memory.py)
                bar.update()
            del final, final_logp, p_final
        bar.close()
        del acts
    table = pd.concat(frames, ignore_index=True).sort_values(["doc", "layer", "position"], ignore_index=True)
    return LogitLensResult(
        model=lm.spec, texts=texts, k=k, table=table, per_layer=per_layer_means(table),
        last_layer_max_abs_diff=worst, info={"n_layers": lm.n_layers, "n_tokens": int(len(table) // lm.n_layers)},
    )


def _check_head(lm, batch: dict, normed: torch.Tensor) -> float:
    """The logits the model itself returns on the first HEAD_CHECK_TOKENS positions (its whole head: unembedding,
    soft-cap, any scale) equal its final-norm output through `unembed_normed`: the final distribution the lens
    is compared with is the model's. Causal attention makes a prefix's logits those of the full text."""
    n = min(HEAD_CHECK_TOKENS, batch["input_ids"].shape[1])
    prefix = lm.inputs(batch["input_ids"][:, :n], batch["attention_mask"][:, :n])
    with torch.inference_mode():
        model_logits = lm.model(**prefix, use_cache=False).logits
    keep = prefix["attention_mask"].bool()
    return _check_last_layer(lm, unembed_normed(lm, normed[:, :n][keep]).float(), model_logits[keep].float())


def _check_last_layer(lm, lens: torch.Tensor, model_logits: torch.Tensor) -> float:
    """The lens at the last block must reproduce the model's logits; anything else is a wrong boundary."""
    diff = max_abs_diff(lens, model_logits)
    if not diff <= tolerance(model_logits):
        raise AnatomyCheckError(
            f"logit lens at the last block differs from {lm.spec}'s own logits by {diff:.3g}: the final norm "
            f"({lm.anatomy.family.final_norm}) or unembedding ({lm.anatomy.family.unembed}) is not the model's"
        )
    return diff


def per_layer_means(table: pd.DataFrame) -> pd.DataFrame:
    """Means over every token of each layer (and the median rank, which the mean overstates)."""
    g = table.groupby("layer")
    out = g.agg(kl=("kl", "mean"), entropy=("entropy", "mean"),
                rank_of_final_top=("rank_of_final_top", "mean"),
                median_rank_of_final_top=("rank_of_final_top", "median"))
    out["top1_agreement"] = g["rank_of_final_top"].apply(lambda r: float((r == 1).mean()))
    return out.reset_index()
