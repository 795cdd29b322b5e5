"""Capture activations at named sites: hooks on the requested sites only, removed on every exit.

One batch flows like this:
    input_ids [batch, tokens] ──► model forward, with a hook on each requested module
        hook: store the module's input or output (q/k/v split into heads, final-norm parts derived)
        hook: once every requested site is stored, raise StopForward (early stop: no deeper layer runs)
    ──► Activations: site name -> tensor [batch, tokens, ...], padding positions set to NaN

Hooks store references, not copies: each hooked tensor is a fresh output of the model. `hidden.I` sites
come from the model's own `output_hidden_states` and therefore disable early stop.

Edits (lamina/edits.py) ride on the same hooks: a hook first writes the edits of its module (out of place)
and returns the new tensor to the model, then stores the sites read there, so every captured site
downstream of an edit sees the edited forward pass, in that one pass.

Threads: a model's hooks are shared by every thread that runs it, so each `Capture` acts only on the forward
passes of the thread that entered it (an edit held in one thread never changes another's pass, and one
thread's early stop never ends another's), and `run_capture` runs one forward pass at a time per model
(`model_lock`): hook registration and the pass itself are serialised.
"""
from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from functools import partial

import torch

from lamina.anatomy import Anatomy
from lamina.edits import BoundEdit
from lamina.errors import InputError, NotCapturedError
from lamina.sites import Site

_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> its forward-pass lock
_locks_guard = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.RLock:
    """The lock that serialises `run_capture`'s forward passes (and every Capture's hook changes) on `model`."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


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

    def __missing__(self, site):
        raise NotCapturedError(f"site {site!r} was not captured; these were: {', '.join(self)}. "
                               "Pass it in sites= to capture it")

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
    `edits` (BoundEdits, see lamina/edits.py) are written by the same hooks before the reads of their module;
    `batch_shape` lets an edit unflatten modules that run on [batch*tokens, ...] (OPT's MLP).
    """

    def __init__(self, model: torch.nn.Module, anatomy: Anatomy, sites: list[Site], stop_early: bool = True,
                 detach: bool = True, edits: list[BoundEdit] = (), batch_shape: tuple[int, int] | None = None):
        self.model, self.anatomy, self.stop_early, self.detach = model, anatomy, stop_early, detach
        self.sites = [s for s in sites if s.kind != "hidden"]
        self.edits, self.batch_shape = list(edits), batch_shape
        self.values: dict[str, torch.Tensor] = {}
        self._handles = []
        self._thread: int | None = None    # the thread whose forward passes this capture reads and edits

    def __enter__(self) -> Capture:
        with model_lock(self.model):
            return self._register()

    def _register(self) -> Capture:
        self._thread = threading.get_ident()
        reads = defaultdict(list)   # (module, "input"|"output") -> sites read there
        writes = defaultdict(list)  # (module, "input"|"output") -> edits written there
        for site in self.sites:
            loc = self.anatomy.locate(site)
            reads[(loc.module, loc.on)].append((site, loc.split))
        for edit in self.edits:
            loc = self.anatomy.locate(edit.site)
            writes[(loc.module, loc.on)].append(edit)
        try:
            for path, on in list(writes) + [key for key in reads if key not in writes]:
                module = self.model.get_submodule(path)
                group, edits = reads.get((path, on), []), writes.get((path, on), [])
                if on == "input":
                    hook = module.register_forward_pre_hook(partial(self._on_input, group, edits), with_kwargs=True)
                else:
                    hook = module.register_forward_hook(partial(self._on_output, group, edits))
                self._handles.append(hook)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove exactly the hooks this capture added."""
        with model_lock(self.model):
            while self._handles:
                self._handles.pop().remove()

    def _on_input(self, group, edits, module, args, kwargs):
        if threading.get_ident() != self._thread:   # another thread's forward pass
            return None
        x = args[0] if args else kwargs["hidden_states"]
        if edits:
            x = self._write(edits, x)
            args, kwargs = ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})
        self._store(group, x)
        return (args, kwargs) if edits else None

    def _on_output(self, group, edits, module, args, output):
        if threading.get_ident() != self._thread:
            return None
        x = _first(output)
        if edits:
            x = self._write(edits, x)
            output = (x, *output[1:]) if isinstance(output, tuple) else x
        self._store(group, x)
        return output if edits else None

    def _write(self, edits, x: torch.Tensor) -> torch.Tensor:
        flat = x.dim() == 2  # a module that runs on [batch*tokens, width]
        if flat:
            if self.batch_shape is None:
                raise InputError("this model runs the edited module on [batch*tokens, ...]; edit it through lm.run")
            x = x.unflatten(0, self.batch_shape)
        for edit in edits:
            x = edit.apply(x)
        return x.flatten(0, 1) if flat else x

    def _store(self, group, x: torch.Tensor) -> None:
        if not group:
            return
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
    edits: list[BoundEdit] = (),
) -> Activations:
    """One forward pass over a batch, returning the requested sites (in the order asked), under `edits`."""
    want_hidden = any(s.kind == "hidden" for s in sites)
    want_logits = any(s.kind == "logits" for s in sites)
    # Without logits, the base model skips the unembedding, a large share of a forward pass.
    runner = model if want_logits else model.base_model
    out = None
    capture = Capture(model, anatomy, sites, stop_early and not want_hidden, edits=edits,
                      batch_shape=tuple(input_ids.shape))
    with model_lock(model), torch.inference_mode(), capture as cap:
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
