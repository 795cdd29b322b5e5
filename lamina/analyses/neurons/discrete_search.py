"""Discrete prompt search with a fluency penalty (GCG / AutoPrompt style, small budget).

    loss(prompt) = -activation + lambda * CE(prompt)      CE: the model's own mean cross-entropy of the prompt

Each step: the gradient of the loss with respect to a one-hot encoding of the prompt [n, vocab] ranks, per
position, the `top_k` swaps that most lower the loss to first order; `batch` prompts, each with one random
position swapped to one of its candidates, are evaluated exactly, and the best replaces the current prompt
when it lowers the loss. Every prompt is a real one, so the activation needs no re-scoring. With lambda = 0
the pass stops after the neuron's site; with lambda > 0 it needs the logits. One point per lambda; the
frontier marks the points no other point beats on both activation (higher) and CE (lower).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lamina import validate
from lamina.analyses.neurons.target import OptimizationDiverged, Target, allowed_ids, prefix_ids, prompt_ce, run_target
from lamina.errors import InputError


def _loss(lm, target: Target, ids: torch.Tensor, start: int, lam: float, inputs: dict):
    """(loss, activation, ce) [b] for prompts ids [b, t] (on the weights' device), the forward pass on `inputs`
    (from `lm.inputs`); ce is NaN when lambda is 0 (no logits computed)."""
    act, logits = run_target(lm, target, start, need_logits=lam > 0, **inputs)
    ce = prompt_ce(logits, ids, start) if lam > 0 else torch.full_like(act, float("nan"))
    return -act + (lam * ce if lam > 0 else 0.0), act, ce


def search_one(lm, target: Target, init_ids: list[int], lam: float, steps: int = 30, top_k: int = 64,
               batch: int = 32, seed: int = 0, progress: bool = True) -> dict:
    """One lambda: greedy coordinate search from `init_ids`; returns the final prompt and its numbers."""
    t0 = time.perf_counter()
    E = lm.embedding_matrix()                                 # on the weights' device, as are the ids below
    device = E.device
    ok = allowed_ids(lm).to(device)
    banned = torch.ones(E.shape[0], dtype=torch.bool, device=device)
    banned[ok] = False
    prefix = torch.tensor(prefix_ids(lm), dtype=torch.long, device=device)
    start, n = len(prefix), len(init_ids)
    g = torch.Generator().manual_seed(seed)
    ids = torch.cat([prefix, torch.tensor(init_ids, device=device)])         # [t]
    with torch.no_grad():
        cur, _, _ = _loss(lm, target, ids[None], start, lam, lm.inputs(ids[None]))
    bar = tqdm(range(steps), desc=f"search {target.name} lambda {lam:g}", disable=not progress, leave=False)
    for step in bar:
        with torch.enable_grad():
            onehot = F.one_hot(ids[start:], E.shape[0]).float().requires_grad_(True)   # [n, vocab]
            embeds = torch.cat([E[prefix], onehot @ E])[None]                          # [1, t, d]
            loss, _, _ = _loss(lm, target, ids[None], start, lam, lm.inputs(inputs_embeds=embeds))
            (grad,) = torch.autograd.grad(loss[0], [onehot])                           # [n, vocab]
        if not bool(torch.isfinite(grad).all()):
            raise OptimizationDiverged(f"the search gradient for {target.name} stopped being finite at step {step}")
        cand = grad.masked_fill(banned, float("inf")).topk(top_k, dim=-1, largest=False).indices  # [n, k]
        pos = torch.randint(n, (batch,), generator=g).to(device)
        pick = torch.randint(top_k, (batch,), generator=g).to(device)
        trial = ids.repeat(batch, 1)                                                    # [batch, t]
        trial[torch.arange(batch, device=device), start + pos] = cand[pos, pick]
        with torch.no_grad():
            losses, _, _ = _loss(lm, target, trial, start, lam, lm.inputs(trial))
        best = int(losses.argmin())
        if float(losses[best]) < float(cur[0]):
            ids, cur = trial[best], losses[best:best + 1]
        bar.set_postfix(loss=f"{float(cur[0]):.3g}")
    with torch.no_grad():  # final numbers with logits, whatever lambda
        _, act, ce = _loss(lm, target, ids[None], start, 1.0, lm.inputs(ids[None]))
    kept = ids[start:].tolist()
    return {"lambda": lam, "ids": kept, "tokens": [lm.tokenizer.decode([i]) for i in kept],
            "text": lm.tokenizer.decode(kept), "activation": float(act[0]), "prompt_ce": float(ce[0]),
            "loss": float(-act[0] + lam * ce[0]), "steps": steps, "seconds": time.perf_counter() - t0}


def mark_frontier(points: list[dict]) -> list[dict]:
    """Set `frontier` on each point: True when no other point has activation >= and CE <=, one strictly."""
    for p in points:
        p["frontier"] = not any(
            q is not p and q["activation"] >= p["activation"] and q["prompt_ce"] <= p["prompt_ce"]
            and (q["activation"] > p["activation"] or q["prompt_ce"] < p["prompt_ce"]) for q in points)
    return points


def discrete_search(lm, target: Target, init_ids: list[int], lambdas=(0.0, 1.0, 4.0), steps: int = 30,
                    top_k: int = 64, batch: int = 32, seed: int = 0, progress: bool = True) -> list[dict]:
    """The search for each lambda from the same start; the activation-vs-fluency points with frontier flags."""
    if not lambdas or any(lam < 0 for lam in lambdas):
        raise InputError(f"fluency lambdas must be >= 0; got {list(lambdas)}")
    if len(prefix_ids(lm)) + len(init_ids) < 2:
        raise InputError("the fluency search needs a prompt of at least 2 tokens: raise --n-tokens")
    top_k, batch = validate.integer("search_top_k", top_k), validate.integer("search_batch", batch)
    steps = validate.integer("search_steps", steps, low=0)
    points = [search_one(lm, target, init_ids, float(lam), steps, top_k, batch, seed, progress) for lam in lambdas]
    return mark_frontier(points)
