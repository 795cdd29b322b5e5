"""Activation maximization by gradient ascent: a few soft input embeddings optimised to drive one neuron.

    v [n_tokens, d_model]            init: the embeddings of random tokens (one draw per seed)
      ──► inputs_embeds [1, prefix + n_tokens, d_model] ──► blocks, a hook on the neuron's site
      ──► a: the neuron at the last position (or the mean over the optimised positions);
          StopForward right after the site, so no deeper layer and no unembedding runs
    loss = -a + norm_penalty * mean_i ((|v_i| - r) / r)^2     r = mean norm of the embedding rows

Adam on v. Each v_i is then decoded to its nearest tokens by cosine with the embedding matrix, and the
neuron is measured again on that discrete prompt: the optimised activation belongs to vectors no token
has, the re-scored one is what a real prompt gets (the number to trust). `projected=True` runs every
forward pass on the nearest tokens of v and passes the gradient straight through to v, so the optimised
activation is a real prompt's too. The prefix is whatever the tokenizer puts before a text (BOS, or none).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lamina.analyses.neurons.discrete_search import discrete_search
from lamina.analyses.neurons.maximize_settings import MaximizeSettings
from lamina.analyses.neurons.target import (
    OptimizationDiverged,
    Target,
    allowed_ids,
    prefix_ids,
    prompt_ce,
    resolve_target,
    run_target,
)


def rescore(lm, target: Target, ids: list[int]) -> dict:
    """The target's activation and the prompt's cross-entropy on the discrete prompt prefix + ids."""
    prefix = prefix_ids(lm)
    batch = lm.inputs(torch.tensor([prefix + list(ids)]))                   # input_ids [1, t]
    with torch.no_grad():
        act, logits = run_target(lm, target, len(prefix), need_logits=True, **batch)
        full = batch["input_ids"]
        ce = prompt_ce(logits, full, len(prefix)) if full.shape[1] > 1 else torch.tensor([math.nan])
    return {"activation": float(act[0]), "prompt_ce": float(ce[0])}


def decode(lm, vectors: torch.Tensor, k: int = 5) -> list[list[dict]]:
    """Per vector [n, d], its k nearest tokens by cosine with the embedding matrix (special tokens excluded)."""
    E, ok = lm.embedding_matrix().to(vectors.device), allowed_ids(lm).to(vectors.device)
    cos = F.normalize(vectors.detach().float(), dim=-1) @ F.normalize(E[ok], dim=-1).T   # [n, allowed]
    values, idx = cos.topk(k, dim=-1)
    return [[{"id": int(ok[j]), "token": lm.tokenizer.decode([int(ok[j])]), "cosine": float(c)}
             for c, j in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(values, idx)]


def nearest_ids(vectors: torch.Tensor, unit_allowed: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """[n, d] -> [n] ids of the nearest allowed token by cosine; unit_allowed: unit rows of W_E[ok]."""
    return ok[(F.normalize(vectors.detach(), dim=-1) @ unit_allowed.T).argmax(-1)]   # [n, allowed] -> [n]


def ascend(lm, target: Target, n_tokens: int = 5, steps: int = 200, lr: float = 0.1, norm_penalty: float = 1.0,
           seed: int = 0, projected: bool = False, top_k: int = 5, progress: bool = True) -> dict:
    """One gradient-ascent run (one seed). `lr` is in units of the embedding matrix's per-coordinate std."""
    t0 = time.perf_counter()
    E = lm.embedding_matrix()                                                # on the weights' device
    ok = allowed_ids(lm).to(E.device)
    unit_ok, r = F.normalize(E[ok], dim=-1), E.norm(dim=-1).mean()
    prefix = prefix_ids(lm)
    pre = E[prefix]                                                          # [p, d]
    g = torch.Generator().manual_seed(seed)
    init = ok[torch.randint(len(ok), (n_tokens,), generator=g).to(ok.device)]
    v = E[init].clone().requires_grad_(True)                                 # [n, d]
    opt = torch.optim.Adam([v], lr=lr * float(E.std()))
    history, best = [], (-math.inf, None)
    bar = tqdm(range(steps), desc=f"maximize {target.name} seed {seed}", disable=not progress, leave=False)
    for step in bar:
        with torch.enable_grad():
            if projected:  # forward on the nearest tokens, gradient straight through to v
                ids = nearest_ids(v, unit_ok, ok)
                x = E[ids] + v - v.detach()
            else:
                x = v
            act, _ = run_target(lm, target, len(prefix), **lm.inputs(inputs_embeds=torch.cat([pre, x])[None]))
            a = act[0]
            value = float(a.detach())
            norms = v.norm(dim=-1)
            loss = -a + norm_penalty * ((norms - r) / r).pow(2).mean()
            if not bool(torch.isfinite(loss)):
                raise OptimizationDiverged(
                    f"the activation of {target.name} became {value} at step {step} of {steps}; "
                    "lower --lr or raise --norm-penalty")
            (grad,) = torch.autograd.grad(loss, [v])    # grads for v only: the model's weights are left alone
        if not bool(torch.isfinite(grad).all()):
            raise OptimizationDiverged(f"the gradient for {target.name} stopped being finite at step {step} of "
                                       f"{steps}; lower --lr or raise --norm-penalty")
        v.grad = grad
        opt.step()
        history.append(value)
        if projected and value > best[0]:
            best = (value, ids.tolist())
        bar.set_postfix(activation=f"{value:.3g}")
    if not projected:  # the final vectors, after the last Adam step
        with torch.no_grad():
            act, _ = run_target(lm, target, len(prefix),
                                **lm.inputs(inputs_embeds=torch.cat([pre, v.detach()])[None]))
        best = (float(act[0]), None)
    decoded = decode(lm, v, top_k)
    ids = best[1] if projected else [row[0]["id"] for row in decoded]
    return {
        "seed": seed,
        "init_tokens": [lm.tokenizer.decode([i]) for i in init.tolist()],
        "init_ids": init.tolist(),
        # share of positions whose decoded token is the token v started from: near 1, ascent went nowhere
        "decoded_is_init": sum(a == b for a, b in zip(ids, init.tolist())) / n_tokens,
        "optimized_activation": best[0],
        "vectors": v.detach().cpu(),                                         # [n, d]; dropped from JSON
        "vector_norms": v.detach().norm(dim=-1).tolist(),
        "embedding_norm": float(r),
        "decoded": decoded,
        "ids": ids,
        "tokens": [lm.tokenizer.decode([i]) for i in ids],
        "text": lm.tokenizer.decode(ids),
        **{f"rescored_{k}": v_ for k, v_ in rescore(lm, target, ids).items()},
        "history": history,
        "seconds": time.perf_counter() - t0,
    }


def _pairs(items):
    return list(itertools.combinations(items, 2))


def reproducibility(token_sets: list[set], vectors: list[torch.Tensor], activations: list[float]) -> dict:
    """Agreement across seeds: unique tokens, mean pairwise Jaccard and cosine, spread of activations.

    Vectors are compared flattened ([n_tokens * d]), so position matters; std is the sample std (ddof=1).
    """
    union = set().union(*token_sets) if token_sets else set()
    jac = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in _pairs(token_sets)]
    cos = [float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0)) for a, b in _pairs(vectors)]
    acts = np.asarray(activations, dtype=float)
    return {
        "n_seeds": len(token_sets),
        "unique_tokens": len(union),
        "mean_jaccard": float(np.mean(jac)) if jac else None,
        "mean_cosine": float(np.mean(cos)) if cos else None,
        "activation_mean": float(acts.mean()) if len(acts) else None,
        "activation_std": float(acts.std(ddof=1)) if len(acts) > 1 else 0.0,
        "activation_min": float(acts.min()) if len(acts) else None,
        "activation_max": float(acts.max()) if len(acts) else None,
    }


@dataclass
class MaximizeResult:
    model: str
    target: str
    settings: dict
    runs: list[dict]                                   # one per seed (see `ascend`)
    reproducibility: dict
    fluency: list[dict] = field(default_factory=list)  # discrete search: one point per lambda

    @property
    def best(self) -> dict:
        """The seed whose decoded prompt re-scores highest."""
        return max(self.runs, key=lambda r: r["rescored_activation"])

    def to_dict(self) -> dict:
        runs = [{k: v for k, v in r.items() if k != "vectors"} for r in self.runs]
        return {"model": self.model, "target": self.target, "settings": self.settings, "runs": runs,
                "best": {k: v for k, v in self.best.items() if k not in ("vectors", "history")},
                "reproducibility": self.reproducibility, "fluency": self.fluency}


def maximize(lm, neuron: str | None = None, settings: MaximizeSettings | None = None, *, site: str | None = None,
             direction=None, progress: bool = True, **options) -> MaximizeResult:
    """Gradient ascent for each seed (`seeds`: a count or a list), decoded and re-scored, and optionally the
    discrete search with a fluency penalty (one point per lambda, warm-started from the best seed).

    `settings`: a `MaximizeSettings`, or its fields by keyword (`maximize(lm, "mlp_post.3:7", steps=50)`; with
    both, the keywords replace those fields)."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    ms = dataclasses.replace(settings, **options) if settings is not None else MaximizeSettings(**options)
    seed_list = list(ms.seeds)
    target = resolve_target(lm, neuron, site, direction, ms.position)
    runs = [ascend(lm, target, ms.n_tokens, ms.steps, ms.lr, ms.norm_penalty, s, ms.projected, ms.top_k, progress)
            for s in seed_list]
    repro = reproducibility([set(r["ids"]) for r in runs], [r["vectors"] for r in runs],
                            [r["rescored_activation"] for r in runs])
    repro["decoded_is_init"] = float(np.mean([r["decoded_is_init"] for r in runs]))
    # the same agreement measures on the seeds' initial random-token vectors: the baseline they need (embedding
    # rows share a common direction, so random starts already agree by cosine)
    E = lm.embedding_matrix()
    base = reproducibility([set(r["init_ids"]) for r in runs], [E[r["init_ids"]].detach().cpu() for r in runs], [])
    repro["initial_mean_cosine"], repro["initial_mean_jaccard"] = base["mean_cosine"], base["mean_jaccard"]
    result = MaximizeResult(lm.spec, target.name, {**dataclasses.asdict(ms), "prefix": prefix_ids(lm)}, runs, repro)
    if ms.fluency_lambdas:
        result.fluency = discrete_search(lm, target, result.best["ids"], ms.fluency_lambdas, ms.search_steps,
                                         ms.search_top_k, ms.search_batch, seed=seed_list[0], progress=progress)
    return result
