"""What a maximization drives, and one forward pass that reads it: shared by gradient ascent (maximize.py)
and the discrete search (discrete_search.py).

    Target: a neuron `SITE:INDEX` or a unit direction in a site, read at the last position or the mean
    run_target: a forward pass (token ids or input embeddings) with a hook on the target's site, the graph
                kept for gradients; without logits it stops right after the site (StopForward)
    prompt_ce: the model's own cross-entropy of a prompt, the fluency term
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lamina.capture import Capture, StopForward
from lamina.errors import InputError, LaminaError, SiteError
from lamina.models.language_model import check_neuron_index
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
    width = lm.site_widths([parsed])[parsed.name]
    if index is not None:
        check_neuron_index(parsed, index, width)
    if direction is not None:
        direction = torch.as_tensor(np.asarray(direction), dtype=torch.float32).flatten()
        if direction.numel() != width or not bool(torch.isfinite(direction).all()) or float(direction.norm()) == 0:
            raise InputError(f"the direction must be {width} finite numbers, not all zero "
                             f"(the width of {parsed.name}); got {direction.numel()}")
        direction = direction / direction.norm()
    return Target(parsed, index, direction, position)


def allowed_ids(lm) -> torch.Tensor:
    """Token ids that optimisation and decoding may use: every token but the special ones."""
    vocab = lm.embedding_matrix().shape[0]
    keep = torch.ones(vocab, dtype=torch.bool)
    special = [i for i in lm.tokenizer.all_special_ids if i is not None and i < vocab]
    keep[special] = False
    return keep.nonzero()[:, 0]


def prefix_ids(lm) -> list[int]:
    """What the tokenizer puts before any text (e.g. BOS); empty for tokenizers that add nothing."""
    return list(lm.tokenizer("", add_special_tokens=True)["input_ids"])


def run_target(lm, target: Target, start: int, need_logits: bool = False, **inputs):
    """(activation [b], logits [b, t, vocab] or None) for `inputs` from `lm.inputs`: input_ids or inputs_embeds
    [b, t, d], and the attention mask.

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
