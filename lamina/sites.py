"""The site grammar: `KIND.LAYER`, model-wide names, TransformerLens aliases, and neurons `SITE:INDEX`.

    resid_post.5        block 5's output                  resid_post      every layer
    mlp_post.5:1234     neuron 1234 of block 5's MLP      hidden.3        output.hidden_states[3]
    final_norm.scale    the final norm's per-token divisor
and layer lists (`--layers 0-3,10`, `parse_layers`).

Names are parsed against a model's number of layers. `n_layers=None` parses without a layer bound: for a
reader that holds site names but not the model's depth (a store), which checks the names against what it holds.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from lamina.errors import InputError, SiteError

# Per-layer kinds in the order a sequential block computes them.
LAYER_KINDS = ("resid_pre", "q", "k", "v", "attn_out", "resid_mid", "mlp_pre", "mlp_post", "mlp_out", "resid_post")
# Model-wide sites in forward order.
MODEL_SITES = ("embed", "final_norm.input", "final_norm.scale", "final_norm.normalized", "final_norm", "logits")

_TL_ALIASES = [  # TransformerLens hook names -> ours
    (r"blocks\.(\d+)\.hook_resid_(pre|mid|post)", r"resid_\2.\1"),
    (r"blocks\.(\d+)\.hook_(attn|mlp)_out", r"\2_out.\1"),
    (r"blocks\.(\d+)\.mlp\.hook_(pre|post)", r"mlp_\2.\1"),
    (r"blocks\.(\d+)\.attn\.hook_([qkv])", r"\2.\1"),
    (r"ln_final\.hook_scale", "final_norm.scale"),
    (r"ln_final\.hook_normalized", "final_norm.normalized"),  # before the norm's weight and bias
    (r"unembed\.hook_in", "final_norm"),
]


@dataclass(frozen=True)
class Site:
    """One place in the forward pass. `layer` is the block index (or the hidden-state index for `hidden`)."""

    kind: str
    layer: int | None = None

    @property
    def name(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}.{self.layer}"

    @property
    def is_derived(self) -> bool:
        """Computed from the final norm's input rather than read from a module."""
        return self.kind in ("final_norm.scale", "final_norm.normalized")

    def order(self, n_layers: int) -> tuple[int, int]:
        """Position in the forward pass, for sorting and early stop."""
        if self.kind in LAYER_KINDS:
            return (self.layer, LAYER_KINDS.index(self.kind))
        if self.kind == "hidden":
            return (n_layers + 2, self.layer)
        i = MODEL_SITES.index(self.kind)
        return (-1, 0) if i == 0 else (n_layers, i)

    def __str__(self) -> str:
        return self.name


def _alias(name: str) -> str:
    for pattern, repl in _TL_ALIASES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, repl, name)
    return name


def _vocabulary(n_layers: int | None, kinds) -> list[str]:
    n_layers = n_layers or 0
    names = list(MODEL_SITES) + list(kinds)
    names += [f"{k}.{i}" for k in kinds for i in range(n_layers)]
    names += [f"hidden.{i}" for i in range(n_layers + 1)]
    return names


def parse_sites(names, n_layers: int, kinds=LAYER_KINDS) -> list[Site]:
    """Parse site names; a kind without a layer means every layer. Raises SiteError with close matches."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    sites: list[Site] = []
    for raw in names:
        for site in _parse_one(raw.strip(), n_layers, kinds):
            if site not in sites:
                sites.append(site)
    if not sites:
        raise SiteError("no site given; name at least one, e.g. resid_post or mlp_post.3")
    return sites


def _parse_one(raw: str, n_layers: int | None, kinds) -> list[Site]:
    name = _alias(raw)
    if name in MODEL_SITES:
        return [Site(name)]
    if n_layers is None and (name in kinds or name == "hidden"):
        raise SiteError(f"{raw}: give a layer, e.g. {name}.0 (every layer needs the model's number of layers)")
    if name in kinds:
        return [Site(name, i) for i in range(n_layers)]
    if name == "hidden":
        return [Site("hidden", i) for i in range(n_layers + 1)]
    match = re.fullmatch(r"([a-z_]+)\.(-?\d+)", name)
    if match and (match[1] in kinds or match[1] == "hidden"):
        kind, layer = match[1], int(match[2])
        if n_layers is None:
            if layer < 0:
                raise SiteError(f"{raw}: count layers from 0 here (a layer from the end needs the model's number "
                                "of layers)")
            return [Site(kind, layer)]
        top = n_layers + 1 if kind == "hidden" else n_layers
        if not -top <= layer < top:
            raise SiteError(f"{raw}: layer {layer} is out of range; this model has layers 0-{top - 1}")
        return [Site(kind, layer % top)]
    if match and match[1] in LAYER_KINDS:
        raise SiteError(f"{raw}: this architecture has no {match[1]} site "
                        "(parallel attention and MLP blocks have no resid_mid)")
    close = difflib.get_close_matches(name, _vocabulary(n_layers, kinds), n=4, cutoff=0.6)
    every = ", ".join(list(kinds) + list(MODEL_SITES))
    hint = f"; did you mean {', '.join(close)}?" if close else f"; site kinds are {every}"
    raise SiteError(f"unknown site '{raw}'{hint}")


def parse_neuron(text: str, n_layers: int | None, kinds=LAYER_KINDS) -> tuple[Site, int]:
    """Parse `SITE:INDEX` (e.g. `mlp_post.5:1234`) into one site and a flat neuron index (n_layers=None: no
    layer bound, see the module docstring)."""
    site_name, sep, index = text.rpartition(":")
    if not sep or not index.lstrip("-").isdigit():
        raise SiteError(f"'{text}' is not a neuron; write SITE:INDEX, e.g. mlp_post.5:1234")
    sites = _parse_one(site_name, n_layers, kinds)
    if len(sites) != 1:
        raise SiteError(f"'{text}' names {len(sites)} sites; give a layer, e.g. {sites[0].name}:{index}")
    return sites[0], int(index)


def parse_layers(spec, n_layers: int | None) -> list[int]:
    """'0-29', '3,5,7', '0-3,10', 'all' or None (every layer) -> sorted layer indices, each in 0..n_layers-1.

    `n_layers=None` (no layer bound): 'all' is refused, the caller knows which layers it holds."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        if n_layers is None:
            raise InputError("--layers 'all' needs the model's number of layers; list the layers, e.g. 0-3")
        return list(range(n_layers))
    if not isinstance(spec, str):
        out = sorted({int(x) for x in spec})
    else:
        out = set()
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
            if not m:
                raise InputError(f"--layers '{spec}': write a range 0-29, a list 3,5,7, or 'all'")
            lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
            out.update(range(lo, hi + 1))
        out = sorted(out)
    if n_layers is None:
        if not out or out[0] < 0:
            raise InputError(f"--layers '{spec}': count layers from 0, e.g. 0-3")
        return out
    bad = [L for L in out if not 0 <= L < n_layers]
    if bad or not out:
        raise InputError(f"--layers '{spec}': this model has layers 0-{n_layers - 1}")
    return out
