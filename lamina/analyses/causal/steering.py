"""Steering: add alpha * direction at a site, score the target effect against the perplexity cost, generate.

Directions: the difference of group means from a `lamina tune` run (its neurons table, one layer: the
`diff` column, or mean_pos - mean_neg), a neuron's output vector (the row it writes to the residual, added
at resid_post of its layer), or a .npy file. The direction is scaled to unit norm and then to the mean norm
of the site's activations over the prompts, so alpha = 1 adds a vector as long as a typical activation.

Target effect: the mean log-probability of the target token right after each prompt (default prompts: the
common beginning of each built-in negation pair, e.g. "The door was", where " not" may come next).
Cost: the next-token loss and KL(clean || steered) on a corpus sample (lamina.analyses.causal.interventions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina.analyses.causal.interventions import Steer
from lamina.analyses.causal.metrics import edit_metrics, final_logits
from lamina.data.windows import pad_id
from lamina.edits import bind_all
from lamina.errors import InputError


def tune_direction(folder, layer: int) -> tuple[str, np.ndarray]:
    """(site, difference of group means at `layer`) from a tune run folder."""
    from lamina.analyses.tuning.run_folder import read_tune_run

    table, settings = read_tune_run(folder)
    rows = table[table.layer == layer].sort_values("neuron")
    if rows.empty:
        raise InputError(f"the tune run in {folder} has no layer {layer}; it covers {sorted(set(table.layer))}")
    if "diff" in rows.columns:
        diff = rows["diff"].to_numpy(float)
    elif {"mean_pos", "mean_neg"} <= set(rows.columns):
        diff = (rows.mean_pos - rows.mean_neg).to_numpy(float)
    else:
        raise InputError(f"the neurons table in {folder} has no diff or mean_pos/mean_neg column")
    return f"{settings.get('site', 'mlp_post')}.{layer}", diff


def neuron_direction(lm, neuron: str) -> tuple[str, np.ndarray]:
    """(resid_post.L, output vector of mlp_post.L:i) for a neuron SITE:INDEX at mlp_post."""
    from lamina.analyses.vocab.projections import output_vectors

    site, index = lm.neuron(neuron)
    if site.kind != "mlp_post":
        raise InputError(f"--neuron {neuron}: an output vector exists for mlp_post neurons only")
    w = output_vectors(lm, site.layer)
    if not 0 <= index < w.shape[0]:
        raise InputError(f"--neuron {neuron}: neuron {index} is out of range 0-{w.shape[0] - 1}")
    return f"resid_post.{site.layer}", w[index].detach().float().cpu().numpy()


def negation_prompts(tokenizer, limit: int | None = 40) -> list[str]:
    """The shared beginning of each built-in negation pair, up to the word the negation is inserted before."""
    from lamina.analyses.tuning.contrasts import read_pairs

    prompts = []
    for aff, neg in read_pairs():
        a, n = aff.split(), neg.split()
        k = 0
        while k < min(len(a), len(n)) and a[k] == n[k]:
            k += 1
        if 0 < k < len(a):
            prompts.append(" ".join(a[:k]))
    prompts = list(dict.fromkeys(prompts))
    return prompts[:limit] if limit else prompts


def unit_scale(lm, site: str, vector, prompts) -> tuple[torch.Tensor, float]:
    """The direction at unit norm [width], and the mean activation norm of `site` over the prompts."""
    v = torch.as_tensor(np.asarray(vector, dtype=np.float32)).flatten()
    if not torch.isfinite(v).all() or float(v.norm()) == 0:
        raise InputError("the steering direction is zero or not finite")
    acts = lm.capture(prompts, [site]).tokens(lm.sites([site])[0].name).flatten(1)
    if acts.shape[1] != v.numel():
        raise InputError(f"the steering vector has width {v.numel()}; {site} has {acts.shape[1]} values per token")
    return v / v.norm(), float(acts.float().norm(dim=-1).mean())


def target_logprob(lm, prompts, target_id: int, edits=()) -> np.ndarray:
    """log p(target | prompt) per prompt [prompts]."""
    lp = torch.log_softmax(final_logits(lm, lm.tokenize(prompts), bind_all(lm, edits)).float(), -1)
    return lp[:, target_id].cpu().numpy()


def steer_sweep(lm, site: str, vector, alphas, target: str, prompts, docs, max_tokens: int = 2048,
                seed: int = 0, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Per alpha: mean target log-prob (with a bootstrap interval over prompts), loss, perplexity and KL."""
    from lamina.analyses.causal.metrics import bootstrap_ratio

    ids = lm.tokenizer(target, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InputError(f"the target {target!r} is {len(ids)} tokens; give a single-token target (e.g. ' not')")
    unit, scale = unit_scale(lm, site, vector, prompts)
    base = target_logprob(lm, prompts, ids[0])
    rows = []
    for alpha in tqdm(alphas, desc="steer", disable=not progress):
        edit = Steer(site, unit * scale, alpha=float(alpha))
        lp = target_logprob(lm, prompts, ids[0], [edit])
        d, lo, hi = bootstrap_ratio(lp - base, np.ones(len(lp)), 1000, seed)
        m = edit_metrics(lm, [edit], docs, max_tokens=max_tokens, n_boot=200, seed=seed).summary
        rows.append({"alpha": float(alpha), "target_logprob": float(lp.mean()), "delta_target": d,
                     "delta_target_low": lo, "delta_target_high": hi, "loss": m["ablated"]["loss"],
                     "perplexity": m["ablated"]["perplexity"], "delta_loss": m["delta_loss"]["value"],
                     "kl": m["kl"]["value"]})
    info = {"model": lm.spec, "site": site, "target": target, "target_id": ids[0], "n_prompts": len(prompts),
            "scale": scale, "baseline_target_logprob": float(base.mean()), "max_tokens": max_tokens}
    return pd.DataFrame(rows), info


def generate(lm, prompt: str, edits=(), max_new_tokens: int = 20) -> str:
    """Greedy continuation of `prompt` under the edits (every forward pass of the generation is edited)."""
    batch = lm.tokenize(prompt)
    with lm.edit(*edits), torch.inference_mode():
        out = lm.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=False,
                                pad_token_id=pad_id(lm.tokenizer))
    return lm.tokenizer.decode(out[0, batch["input_ids"].shape[1]:])
