"""Capture activations at named sites: hooks on the requested sites only, removed on every exit.

One batch flows like this:
    input_ids [batch, tokens] ──► model forward, with a hook on each requested module
        hook: store the module's input or output (q/k/v split into heads, final-norm parts derived)
        hook: once every requested site is stored, raise StopForward (early stop: no deeper layer runs)
    ──► Activations: site name -> tensor [batch, tokens, ...], padding positions set to NaN

Hooks store references, not copies: each hooked tensor is a fresh output of the model. `hidden.I` sites
come from the model's own `output_hidden_states` and therefore disable early stop.
"""
from __future__ import annotations

from collections import defaultdict
from functools import partial

import torch

from lamina.anatomy import Anatomy
from lamina.sites import Site


class StopForward(Exception):
    """Raised inside a hook to end the forward pass once the deepest requested site is stored."""

    def __init__(self, owner):
        super().__init__("forward pass stopped early by lamina")
        self.owner = owner


class Activations(dict):
    """Site name -> tensor [batch, tokens, ...] (q/k/v: [batch, tokens, heads, d_head]).

    Padding positions (attention_mask == 0) hold NaN so they cannot silently enter a statistic;
    `tokens(site)` gives the real tokens only, flattened to [n_tokens, ...].
    """

    def __init__(self, values, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        super().__init__(values)
        self.input_ids = input_ids            # [batch, tokens]
        self.attention_mask = attention_mask  # [batch, tokens], 1 for real tokens

    def tokens(self, site: str) -> torch.Tensor:
        """The site's values at real (non-padding) tokens: [n_tokens, ...]."""
        return self[site][self.attention_mask.bool()]


def _first(output):
    # Attention modules return (output, weights); transformers 5 decoder layers return a plain tensor,
    # where output[0] would silently select the first batch row. Only unpack real tuples.
    return output[0] if isinstance(output, tuple) else output


class Capture:
    """Context manager owning the hooks for a set of sites on one model (baukit/TransformerLens style).

    `detach=False` keeps the autograd graph (activation maximization by gradient ascent).
    Only the hooks it registers are removed on exit, whatever the exit (exception, KeyboardInterrupt,
    a generator closed early); hooks that others added are never touched.
    """

    def __init__(self, model: torch.nn.Module, anatomy: Anatomy, sites: list[Site], stop_early: bool = True,
                 detach: bool = True):
        self.model, self.anatomy, self.stop_early, self.detach = model, anatomy, stop_early, detach
        self.sites = [s for s in sites if s.kind != "hidden"]
        self.values: dict[str, torch.Tensor] = {}
        self._handles = []

    def __enter__(self) -> "Capture":
        by_module = defaultdict(list)  # (module, "input"|"output") -> sites read there
        for site in self.sites:
            loc = self.anatomy.locate(site)
            by_module[(loc.module, loc.on)].append((site, loc.split))
        try:
            for (path, on), group in by_module.items():
                module = self.model.get_submodule(path)
                if on == "input":
                    hook = module.register_forward_pre_hook(partial(self._on_input, group), with_kwargs=True)
                else:
                    hook = module.register_forward_hook(partial(self._on_output, group))
                self._handles.append(hook)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove exactly the hooks this capture added."""
        while self._handles:
            self._handles.pop().remove()

    def _on_input(self, group, module, args, kwargs):
        self._store(group, args[0] if args else kwargs["hidden_states"])

    def _on_output(self, group, module, args, output):
        self._store(group, _first(output))

    def _store(self, group, x: torch.Tensor) -> None:
        for site, split in group:
            if split:
                value = self.anatomy.split_heads(split, x)
            elif site.is_derived:
                scale, normalized = self.anatomy.final_norm_parts(x)
                value = scale if site.kind == "final_norm.scale" else normalized
            else:
                value = x
            if site.kind in self.anatomy.family.written_in_place:  # the model writes into it after this hook
                value = value.clone()
            self.values[site.name] = value.detach() if self.detach else value  # keep the graph for gradients
        if self.stop_early and len(self.values) == len(self.sites):
            raise StopForward(self)


def run_capture(
    model: torch.nn.Module,
    anatomy: Anatomy,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sites: list[Site],
    stop_early: bool = True,
) -> Activations:
    """One forward pass over a batch, returning the requested sites (in the order asked)."""
    want_hidden = any(s.kind == "hidden" for s in sites)
    want_logits = any(s.kind == "logits" for s in sites)
    # Without logits, the base model skips the unembedding, a large share of a forward pass.
    runner = model if want_logits else model.base_model
    out = None
    with torch.inference_mode(), Capture(model, anatomy, sites, stop_early and not want_hidden) as cap:
        try:
            out = runner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                use_cache=False,
                output_hidden_states=want_hidden,
            )
        except StopForward as stop:
            if stop.owner is not cap:
                raise
    values = {}
    mask = attention_mask.bool()
    padded = not bool(mask.all())
    for site in sites:
        x = out.hidden_states[site.layer] if site.kind == "hidden" else cap.values[site.name]
        if tuple(x.shape[:2]) != tuple(mask.shape) and x.shape[0] == mask.numel():
            x = x.unflatten(0, tuple(mask.shape))  # modules that run on [batch*tokens, ...] (OPT's MLP)
        if padded:
            x = x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - 2))), float("nan"))
        values[site.name] = x
    return Activations(values, input_ids, attention_mask)
