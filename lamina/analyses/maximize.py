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

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lamina import validate
from lamina.capture import Capture, StopForward
from lamina.errors import InputError, LaminaError, SiteError
from lamina.sites import MODEL_SITES, Site


class OptimizationDiverged(LaminaError):
    """The activation or its gradient stopped being finite during optimisation."""


@dataclass(frozen=True)
class Target:
    """What to maximise: neuron `index` of a site, or a unit `direction` in it, at one position or the mean."""

    site: Site
    index: int | None = None
    direction: torch.Tensor | None = None   # [width], unit norm
    position: str = "last"                  # "last" | "mean" (over the optimised positions)

    @property
    def name(self) -> str:
        return f"{self.site.name}:{self.index}" if self.index is not None else f"{self.site.name}:direction"

    def read(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Site value x [b, t, ...] -> activation [b]; positions before `start` are the fixed prefix."""
        x = x.flatten(2).float()                                             # [b, t, width]
        a = x[..., self.index] if self.direction is None else x @ self.direction.to(x.device)  # [b, t]
        return a[:, -1] if self.position == "last" else a[:, start:].mean(1)


def site_width(lm, site: Site) -> int:
    """Number of values per token at `site` (heads x d_head for q/k/v), measured on one token."""
    token = int(allowed_ids(lm)[0])
    x = lm.capture({"input_ids": torch.tensor([[token]], device=lm.device)}, [site])[site.name]
    return x[0, 0].numel()


def resolve_target(lm, neuron: str | None = None, site: str | None = None, direction=None,
                   position: str = "last") -> Target:
    """Check a neuron `SITE:INDEX` (or a site and a direction) against the model; errors say what can be."""
    if position not in ("last", "mean"):
        raise InputError(f"--position must be last or mean, not {position!r}")
    if (neuron is None) == (direction is None):
        raise InputError("give either a neuron (SITE:INDEX) or a site and a direction, not both or neither")
    if neuron is not None:
        parsed, index = lm.neuron(neuron)
    else:
        sites = lm.sites([site]) if site else []
        if len(sites) != 1:
            raise SiteError(f"a direction needs one site with a layer, e.g. resid_post.3; got {site!r}")
        parsed, index = sites[0], None
    if parsed.kind not in lm.anatomy.kinds:
        raise SiteError(f"cannot maximize {parsed.name}: only sites inside a block can be maximized "
                        f"({', '.join(lm.anatomy.kinds)}); the model-wide sites "
                        f"({', '.join(MODEL_SITES)}) and hidden.I are not")
    width = site_width(lm, parsed)
    if index is not None and not 0 <= index < width:
        raise SiteError(f"{parsed.name}:{index}: neuron index out of range; {parsed.name} has neurons 0-{width - 1}")
    if direction is not None:
        direction = torch.as_tensor(np.asarray(direction), dtype=torch.float32).flatten()
        if direction.numel() != width or not bool(torch.isfinite(direction).all()) or float(direction.norm()) == 0:
            raise InputError(f"the direction must be {width} finite numbers, not all zero "
                             f"(the width of {parsed.name}); got {direction.numel()}")
        direction = direction / direction.norm()
    return Target(parsed, index, direction, position)


def embedding_matrix(lm) -> torch.Tensor:
    """W_E [vocab, d_model], the rows the tokenizer can produce, detached float32."""
    weight = lm.model.get_input_embeddings().weight
    return weight.detach().float()[: min(len(lm.tokenizer), weight.shape[0])]


def allowed_ids(lm) -> torch.Tensor:
    """Token ids that optimisation and decoding may use: every token but the special ones."""
    vocab = embedding_matrix(lm).shape[0]
    keep = torch.ones(vocab, dtype=torch.bool)
    special = [i for i in lm.tokenizer.all_special_ids if i is not None and i < vocab]
    keep[special] = False
    return keep.nonzero()[:, 0]


def prefix_ids(lm) -> list[int]:
    """What the tokenizer puts before any text (e.g. BOS); empty for tokenizers that add nothing."""
    return list(lm.tokenizer("", add_special_tokens=True)["input_ids"])


def run_target(lm, target: Target, start: int, need_logits: bool = False, **inputs):
    """(activation [b], logits [b, t, vocab] or None) for input_ids or inputs_embeds [b, t, d].

    Grad mode is the caller's. Without logits the pass stops after the target's site (StopForward).
    """
    runner = lm.model if need_logits else lm.model.base_model
    out = None
    with Capture(lm.model, lm.anatomy, [target.site], stop_early=not need_logits, detach=False) as cap:
        try:
            out = runner(**inputs, use_cache=False)
        except StopForward as stop:
            if stop.owner is not cap:
                raise
    return target.read(cap.values[target.site.name], start), (out.logits if need_logits else None)


def prompt_ce(logits: torch.Tensor, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Mean cross-entropy (nats/token) of the prompt's own tokens from position max(start, 1) on: [b].

    logits [b, t, vocab], ids [b, t]; the first token has no prediction when there is no prefix.
    """
    first = max(start, 1)
    logp = logits[:, first - 1:-1].float().log_softmax(-1)                   # [b, t - first, vocab]
    return -logp.gather(-1, ids[:, first:, None])[..., 0].mean(1)           # [b]


def rescore(lm, target: Target, ids: list[int]) -> dict:
    """The target's activation and the prompt's cross-entropy on the discrete prompt prefix + ids."""
    prefix = prefix_ids(lm)
    full = torch.tensor([prefix + list(ids)], device=lm.device)             # [1, t]
    with torch.no_grad():
        act, logits = run_target(lm, target, len(prefix), need_logits=True, input_ids=full)
        ce = prompt_ce(logits, full, len(prefix)) if full.shape[1] > 1 else torch.tensor([math.nan])
    return {"activation": float(act[0]), "prompt_ce": float(ce[0])}


def decode(lm, vectors: torch.Tensor, k: int = 5) -> list[list[dict]]:
    """Per vector [n, d], its k nearest tokens by cosine with the embedding matrix (special tokens excluded)."""
    E, ok = embedding_matrix(lm).to(vectors.device), allowed_ids(lm).to(vectors.device)
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
    E, ok = embedding_matrix(lm).to(lm.device), allowed_ids(lm).to(lm.device)
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
            act, _ = run_target(lm, target, len(prefix), inputs_embeds=torch.cat([pre, x])[None])
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
            act, _ = run_target(lm, target, len(prefix), inputs_embeds=torch.cat([pre, v.detach()])[None])
        best = (float(act[0]), None)
    decoded = decode(lm, v, top_k)
    ids = best[1] if projected else [row[0]["id"] for row in decoded]
    return {
        "seed": seed,
        "init_tokens": [lm.tokenizer.decode([i]) for i in init.tolist()],
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


def maximize(lm, neuron: str | None = None, *, site: str | None = None, direction=None, position: str = "last",
             n_tokens: int = 5, steps: int = 200, lr: float = 0.1, norm_penalty: float = 1.0, seeds=1,
             projected: bool = False, top_k: int = 5, fluency_lambdas=(), search_steps: int = 30,
             search_top_k: int = 64, search_batch: int = 32, progress: bool = True) -> MaximizeResult:
    """Gradient ascent for each seed (`seeds`: a count or a list), decoded and re-scored, and optionally the
    discrete search with a fluency penalty (one point per lambda, warm-started from the best seed)."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    for name, value in (("n_tokens", n_tokens), ("steps", steps), ("seeds", len(seed_list)), ("top_k", top_k)):
        validate.integer(name, value)
    lr, norm_penalty = validate.positive("lr", lr), validate.positive("norm_penalty", norm_penalty, allow_zero=True)
    target = resolve_target(lm, neuron, site, direction, position)
    runs = [ascend(lm, target, n_tokens, steps, lr, norm_penalty, s, projected, top_k, progress) for s in seed_list]
    repro = reproducibility([set(r["ids"]) for r in runs], [r["vectors"] for r in runs],
                            [r["rescored_activation"] for r in runs])
    repro["decoded_is_init"] = float(np.mean([r["decoded_is_init"] for r in runs]))
    settings = dict(position=position, n_tokens=n_tokens, steps=steps, lr=lr, norm_penalty=norm_penalty,
                    seeds=seed_list, projected=projected, top_k=top_k, prefix=prefix_ids(lm))
    result = MaximizeResult(lm.spec, target.name, settings, runs, repro)
    if fluency_lambdas:
        from lamina.analyses.discrete_search import discrete_search

        settings.update(fluency_lambdas=list(fluency_lambdas), search_steps=search_steps,
                        search_top_k=search_top_k, search_batch=search_batch)
        result.fluency = discrete_search(lm, target, result.best["ids"], fluency_lambdas, search_steps,
                                         search_top_k, search_batch, seed=seed_list[0], progress=progress)
    return result
