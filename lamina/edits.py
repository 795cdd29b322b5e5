"""Edits: hooks that write. An `Edit` overwrites part of one site during a forward pass.

    Edit("mlp_post.3", "zero", neurons=[5])                  zero neuron 5 of block 3's MLP, every position
    Edit("resid_post.2", "add", value=v, positions=[4])     add a vector [d_model] at position 4 (steering)
    Edit("q.1", "scale", heads=[0], value=0.5)              halve head 0's queries (all d_head values)
    Edit("attn_out.0", "set", value=x, positions=mask)      write x ([d], [tokens, d] or [batch, tokens, d])
                                                            where the [batch, tokens] bool mask is True

`Capture(..., edits=[...])` installs them: one hook per module both writes (first) and reads (after), so an
edit and a capture of any later site share one forward pass. `mean` and `resample` ablations are `set`
edits whose value comes from a reference corpus (lamina/analyses/causal/interventions.py: `Ablate`, `reference_stats`).
Every write is out of place: the module's own output tensor (which a capture may hold) is never changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lamina.errors import InputError, SiteError
from lamina.sites import LAYER_KINDS, Site

OPS = ("zero", "set", "add", "scale")
EDITABLE_MODEL_SITES = ("embed", "final_norm.input", "final_norm")


@dataclass(frozen=True, eq=False)
class Edit:
    """One write at one site: `op` on the chosen neurons (or heads) at the chosen positions.

    neurons: flat indices at the site (q/k/v: head * d_head + i), None for all; heads: whole q/k/v heads.
    positions: None (all), "first", a list of token positions (each text), or a bool mask [batch, tokens].
    value: set -> broadcastable to [batch, tokens, n], or a function (batch, tokens) -> such a tensor;
           add -> [n]; scale -> a number. zero takes none.
    """

    site: str | Site
    op: str = "zero"
    neurons: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    positions: Any = None
    value: Any = None

    def __post_init__(self):
        if self.op not in OPS:
            raise InputError(f"unknown edit operation '{self.op}'; choose one of {', '.join(OPS)}")
        if self.op != "zero" and self.value is None:
            raise InputError(f"a '{self.op}' edit needs a value")
        if self.neurons is not None and self.heads is not None:
            raise InputError("give neurons or heads, not both")
        for name in ("neurons", "heads"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, tuple):
                object.__setattr__(self, name, tuple(int(i) for i in v))
        if isinstance(self.positions, (list, tuple, range)):
            object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
            if not self.positions or min(self.positions) < 0:
                raise InputError("positions must be a non-empty list of token positions >= 0")
        elif self.positions is not None and not isinstance(self.positions, (str, torch.Tensor)):
            raise InputError("positions must be None, 'first', a list of positions or a bool mask [batch, tokens]")
        if isinstance(self.positions, str) and self.positions not in ("all", "first"):
            raise InputError(f"positions must be all, first, a list or a mask, not '{self.positions}'")


@dataclass(frozen=True, eq=False)
class BoundEdit:
    """An Edit checked against one model: its site, and the columns it writes in the module's tensor."""

    edit: Edit
    site: Site
    columns: torch.Tensor | None   # [n] indices into the module tensor's last dim; None = all
    n: int                         # values written per token

    def positions_mask(self, batch: int, tokens: int, device) -> torch.Tensor:
        """[batch, tokens] bool: where this edit writes."""
        p = self.edit.positions
        if p is None or p == "all":
            return torch.ones(batch, tokens, dtype=torch.bool, device=device)
        mask = torch.zeros(batch, tokens, dtype=torch.bool, device=device)
        if isinstance(p, torch.Tensor):
            if tuple(p.shape) != (batch, tokens):
                raise InputError(f"{self.site.name}: position mask is {tuple(p.shape)}, "
                                 f"the batch is ({batch}, {tokens})")
            return p.to(device=device, dtype=torch.bool)
        cols = (0,) if p == "first" else p
        if max(cols) >= tokens:
            raise InputError(f"{self.site.name}: position {max(cols)} is beyond the text's {tokens} tokens")
        mask[:, list(cols)] = True
        return mask

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x [batch, tokens, width] -> a new tensor with the edit written."""
        e = self.edit
        batch, tokens = x.shape[:2]
        mask = self.positions_mask(batch, tokens, x.device)[..., None]       # [b, t, 1]
        old = x if self.columns is None else x[..., self.columns]            # [b, t, n]
        if e.op == "zero":
            new = torch.zeros_like(old)
        elif e.op == "scale":
            new = old * float(e.value)
        else:
            v = e.value(batch, tokens) if callable(e.value) else e.value
            v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
            if v.dim() == 0 or v.shape[-1] not in (1, self.n):
                raise InputError(f"{self.site.name}: the {e.op} value has width {tuple(v.shape)[-1:] or 'scalar'}; "
                                 f"this edit writes {self.n} values per token")
            if e.op == "add":
                new = old + v
            else:
                if v.dim() >= 2:                    # [tokens, n] or [batch, tokens, n]: cut to this batch's tokens
                    if v.shape[-2] < tokens:
                        raise InputError(f"{self.site.name}: the set value covers {v.shape[-2]} tokens, "
                                         f"the batch has {tokens}")
                    v = v[..., :tokens, :]
                new = v.expand_as(old)
        new = torch.where(mask, new, old)
        if self.columns is None:
            return new
        out = x.clone()
        out[..., self.columns] = new
        return out


def bind(edit: Edit, anatomy, width: int, site: Site) -> BoundEdit:
    """Check an edit's indices against its (parsed) site and find the tensor columns it writes.

    `width` is the number of values per token at the site (heads x d_head for q/k/v)."""
    neurons = edit.neurons
    if edit.heads is not None:
        if site.kind not in ("q", "k", "v"):
            raise SiteError(f"heads can be edited at q, k or v sites only, not {site.name}")
        n_heads = width // anatomy.d_head
        bad = [h for h in edit.heads if not 0 <= h < n_heads]
        if bad:
            raise InputError(f"{site.name}: head {bad[0]} is out of range 0-{n_heads - 1}")
        neurons = tuple(h * anatomy.d_head + i for h in edit.heads for i in range(anatomy.d_head))
    if neurons is not None:
        bad = [i for i in neurons if not 0 <= i < width]
        if bad:
            raise InputError(f"{site.name}: neuron {bad[0]} is out of range 0-{width - 1}")
        if not neurons:
            raise InputError(f"{site.name}: the edit names no neuron")
    if site.kind in ("q", "k", "v"):
        columns = qkv_columns(anatomy, site.kind, neurons, width)
    else:
        columns = None if neurons is None else torch.tensor(neurons, dtype=torch.long)
    return BoundEdit(edit, site, columns, width if neurons is None else len(neurons))


def qkv_columns(anatomy, which: str, neurons, width: int) -> torch.Tensor:
    """Columns of the projection's output (fused or not) that hold q/k/v values `neurons` (flat head x d_head).

    Found by splitting the column indices themselves with the same `split_heads` capture uses, so every
    fused layout (gpt2, neox, phi3, grouped, codegen) is written exactly where it is read."""
    total = width if anatomy.family.qkv_layout == "separate" else None
    if total is None:  # fused: the projection holds q, k and v
        total = anatomy.n_heads * anatomy.d_head + 2 * anatomy.n_kv_heads * anatomy.d_head
    index = anatomy.split_heads(which, torch.arange(total)).flatten()   # [width]: column of each flat value
    return index if neurons is None else index[list(neurons)]


def bind_all(lm, edits) -> list[BoundEdit]:
    """Bind edits (or objects with `to_edit(lm)`, such as Ablate and Steer) to a LanguageModel."""
    if all(isinstance(e, BoundEdit) for e in edits):  # bound already (a loop binds once)
        return list(edits)
    edits = [e.to_edit(lm) if hasattr(e, "to_edit") else e for e in edits]
    for e in edits:
        if not isinstance(e, Edit):
            raise InputError(f"not an edit: {e!r}; use lamina.Edit, lamina.Ablate or lamina.Steer")
    sites = []
    for e in edits:
        site = e.site if isinstance(e.site, Site) else lm.sites([e.site])
        if not isinstance(site, Site):
            if len(site) != 1:
                raise SiteError(f"an edit needs one site with its layer, e.g. {site[0].name}; "
                                f"'{e.site}' names {len(site)}")
            site = site[0]
        sites.append(site)
    for s in sites:
        if s.kind not in LAYER_KINDS and s.kind not in EDITABLE_MODEL_SITES:
            raise SiteError(f"cannot edit {s.name}: it is derived or read-only; edit final_norm.input, "
                            "final_norm or a per-layer site instead")
    return [bind(e, lm.anatomy, site_width(lm, s), site=s) for e, s in zip(edits, sites)]


def site_width(lm, site: Site) -> int:
    """Values per token at a site, from the config and weights (no forward pass); a one-token probe
    for an MLP whose down projection the family table does not name."""
    a = lm.anatomy
    if site.kind in ("q", "k", "v"):
        return (a.n_heads if site.kind == "q" else a.n_kv_heads) * a.d_head
    if site.kind not in ("mlp_pre", "mlp_post"):
        return a.d_model
    if a.family.mlp_down:
        down = lm.model.get_submodule(f"{a.block(site.layer)}.{a.family.mlp_down}")
        if isinstance(down, torch.nn.Linear):
            return down.in_features
        if type(down).__name__ == "Conv1D":  # GPT-2: weight [in, out]
            return down.weight.shape[0]
    token = lm.tokenizer.eos_token_id or 0
    return int(lm.capture(lm.inputs(torch.tensor([[token]])), [site])[site.name][0, 0].numel())


def check_positions(edits: list[BoundEdit], lengths: list[int]) -> None:
    """Every listed position must exist in every text (lengths: real tokens per text)."""
    for e in edits:
        p = e.edit.positions
        if isinstance(p, tuple):
            for i, n in enumerate(lengths):
                if max(p) >= n:
                    raise InputError(f"{e.site.name}: position {max(p)} is beyond text {i}, which has {n} tokens")
