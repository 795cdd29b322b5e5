"""The benchmark's variants: the same captures with plain transformers, lamina, TransformerLens 4 and nnsight.

A variant is a function (input_ids [b, t], attention_mask [b, t]) -> {lamina site name: tensor}, so that
every tool can be checked against lamina's values before it is timed. Peers get their own deep copy of
the model: TransformerLens switches the model it wraps to eager attention, and nnsight wraps modules, so
sharing one model would change what the bare forward measures. Each peer is driven as its own
documentation suggests, with the cheapest stop it offers (nnsight `tracer.stop()`, TransformerLens
`stop_at_layer`).
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

TOOLS = ("hf", "lamina", "tl", "tl-compat", "nnsight")
COPY_MODEL = True  # False in a process of its own (memory jobs): the peer may then wrap lm.model itself


def _model(lm) -> torch.nn.Module:
    return copy.deepcopy(lm.model) if COPY_MODEL else lm.model


@dataclass
class Variant:
    name: str        # e.g. "lamina resid_post"
    tool: str        # one of TOOLS
    sites: list[str]  # lamina site names it returns (empty for plain forwards)
    run: Callable[[torch.Tensor, torch.Tensor], dict]


def site_sets(n_layers: int, early: int = 2) -> dict[str, list[str]]:
    """The four captures of the benchmark, as lamina site names."""
    every = range(n_layers)
    return {
        "resid_post": [f"resid_post.{L}" for L in every],
        "mlp_post": [f"mlp_post.{L}" for L in every],
        f"resid_post.{early}": [f"resid_post.{early}"],
        "q/k/v": [f"{kind}.{L}" for L in every for kind in "qkv"],
    }


def _layer(site: str) -> int:
    return int(site.rsplit(".", 1)[1])


# ---- transformers and lamina -------------------------------------------------------------------------

def hf_variants(lm) -> list[Variant]:
    model = lm.model

    def bare(ids, mask):  # the decoder stack without the unembedding: what a capture needs
        model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
        return {}

    def full(ids, mask):  # the CausalLM forward, logits included
        model(input_ids=ids, attention_mask=mask, use_cache=False)
        return {}

    def hidden(ids, mask):  # hidden_states[L + 1] = resid_post.L for L < N - 1 (the last is after the final norm)
        out = model.base_model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
        return {f"resid_post.{L}": out.hidden_states[L + 1] for L in range(lm.n_layers - 1)}

    return [Variant("hf bare (base model)", "hf", [], bare), Variant("hf full (with logits)", "hf", [], full),
            Variant("hf output_hidden_states", "hf", [f"resid_post.{L}" for L in range(lm.n_layers - 1)], hidden)]


def lamina_variants(lm, sets: dict[str, list[str]]) -> list[Variant]:
    def make(sites):
        return lambda ids, mask: dict(lm.capture({"input_ids": ids, "attention_mask": mask}, sites))

    return [Variant(f"lamina {label}", "lamina", sites, make(sites)) for label, sites in sets.items()]


# ---- TransformerLens 4 (TransformerBridge; HookedTransformer was removed in 4.0) ---------------------

TL_NAMES = {"resid_post": "blocks.{L}.hook_resid_post", "mlp_post": "blocks.{L}.mlp.hook_post",
            "q": "blocks.{L}.attn.hook_q", "k": "blocks.{L}.attn.hook_k", "v": "blocks.{L}.attn.hook_v"}


def tl_bridge(lm, compat: bool = False):
    """A TransformerBridge around a copy of lm's model, built offline from the loaded model and tokenizer."""
    from transformer_lens.model_bridge import TransformerBridge

    tokenizer = copy.deepcopy(lm.tokenizer)
    # TL re-loads the tokenizer by name to add BOS unless it already adds one; offline there is no name.
    tokenizer.init_kwargs.setdefault("name_or_path", "")
    tokenizer.init_kwargs["add_bos_token"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(lm.model.config.model_type, hf_model=_model(lm),
                                                     tokenizer=tokenizer, device="cpu")
        if compat:  # HookedTransformer's hooks and numerics, without folding or centering the weights
            bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    return bridge.eval()


def tl_variants(lm, sets: dict[str, list[str]], compat: bool = False) -> list[Variant]:
    bridge = tl_bridge(lm, compat)
    tool = "tl-compat" if compat else "tl"

    def make(sites):
        names = {TL_NAMES[s.rsplit(".", 1)[0]].format(L=_layer(s)): s for s in sites}
        # stop_at_layer only helps below the last block: at N, TL still runs the unembedding.
        stop = max(_layer(s) for s in sites) + 1
        stop = stop if stop < lm.n_layers else None

        def run(ids, mask):
            _, cache = bridge.run_with_cache(ids, attention_mask=mask, names_filter=list(names), stop_at_layer=stop,
                                             return_cache_object=False)
            return {site: cache[name] for name, site in names.items()}
        return run

    return [Variant(f"{tool} {label}", tool, sites, make(sites)) for label, sites in sets.items()]


# ---- nnsight 0.8 --------------------------------------------------------------------------------------

# (module path, "input"|"output") per lamina kind, written by hand per architecture as an nnsight user would.
NNSIGHT_PATHS = {
    "gpt2": {"resid_post": ("transformer.h.{L}", "output"), "mlp_post": ("transformer.h.{L}.mlp.act", "output"),
             "qkv": ("transformer.h.{L}.attn.c_attn", "output")},
    "llama": {"resid_post": ("model.layers.{L}", "output"), "mlp_post": ("model.layers.{L}.mlp.down_proj", "input"),
              **{kind: (f"model.layers.{{L}}.self_attn.{kind}_proj", "output") for kind in "qkv"}},
}


def _envoy(root, path: str):
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


def _heads(lm, kind: str, x: torch.Tensor) -> torch.Tensor:
    """[b, t, projection] -> [b, t, heads, d_head]; GPT-2's fused c_attn is [q | k | v]."""
    a = lm.anatomy
    if lm.anatomy.family.name == "gpt2":
        x = x.split(a.d_model, dim=-1)["qkv".index(kind)]
    return x.unflatten(-1, (-1, a.d_head))


def nnsight_model(lm):
    from nnsight import TransformersModel

    return TransformersModel(_model(lm), tokenizer=lm.tokenizer, task="text-generation")


def nnsight_variants(lm, sets: dict[str, list[str]]) -> list[Variant]:
    family = lm.anatomy.family.name
    if family not in NNSIGHT_PATHS:
        raise NotImplementedError(f"no nnsight module paths written for the {family} family")
    paths = NNSIGHT_PATHS[family]
    model = nnsight_model(lm)

    def make(sites):
        # One read per module, in execution order (nnsight refuses reads out of order).
        reads = []
        for s in sites:
            kind, L = s.rsplit(".", 1)[0], _layer(s)
            key = "qkv" if kind in "qkv" and "qkv" in paths else kind
            path, on = paths[key]
            if not reads or reads[-1][0] != path.format(L=L):
                reads.append((path.format(L=L), on, []))
            reads[-1][2].append(s)
        order = {"q": 0, "k": 1, "v": 2, "mlp_post": 3, "resid_post": 4}
        reads.sort(key=lambda r: (_layer(r[2][0]), order[r[2][0].rsplit(".", 1)[0]]))

        def run(ids, mask):
            saved = []
            with model.trace(input_ids=ids, attention_mask=mask, use_cache=False) as tracer:
                for path, on, _ in reads:
                    envoy = _envoy(model, path)
                    saved.append((envoy.input if on == "input" else envoy.output).save())
                tracer.stop()  # no deeper module runs, and no logits
            out = {}
            for (_, _, group), value in zip(reads, saved):
                for s in group:
                    kind = s.rsplit(".", 1)[0]
                    out[s] = _heads(lm, kind, value) if kind in "qkv" else value
            return out
        return run

    return [Variant(f"nnsight {label}", "nnsight", sites, make(sites)) for label, sites in sets.items()]


def build(lm, tools, sets) -> tuple[list[Variant], dict[str, str]]:
    """Every variant of the requested tools; a tool that cannot be built offline is reported, not fatal."""
    builders = {"hf": lambda: hf_variants(lm), "lamina": lambda: lamina_variants(lm, sets),
                "tl": lambda: tl_variants(lm, sets), "tl-compat": lambda: tl_variants(lm, sets, compat=True),
                "nnsight": lambda: nnsight_variants(lm, sets)}
    variants, missing = [], {}
    for tool in tools:
        try:
            variants += builders[tool]()
        except Exception as err:  # noqa: BLE001 - a peer that cannot be built is a row "n/a (reason)"
            missing[tool] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    return variants, missing


# ---- the profile job: the same per-layer statistics with a hand-written loop ---------------------------

class SimpleStats:
    """What a hand-written loop would keep per layer: raw moments, norm sum, top-3 |x|, a sample for the median."""

    def __init__(self, sample_per_batch: int = 8192, seed: int = 0):
        self.n = self.rows = 0
        self.s = torch.zeros(4, dtype=torch.float64)  # sums of x, x^2, x^3, x^4
        self.norm_sum = 0.0
        self.top = torch.empty(0)
        self.sample, self.per_batch = [], sample_per_batch
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, x: torch.Tensor) -> None:  # x [n, d]
        xd = x.double().reshape(-1)
        x2 = xd * xd
        self.s += torch.stack([xd.sum(), x2.sum(), (x2 * xd).sum(), (x2 * x2).sum()])
        self.n += xd.numel()
        self.rows += x.shape[0]
        self.norm_sum += float(x.norm(dim=1).sum())
        absx = x.abs().reshape(-1)
        top = torch.cat([self.top, absx.topk(min(3, absx.numel())).values])
        self.top = top.topk(min(3, top.numel())).values
        self.sample.append(absx[torch.randint(absx.numel(), (self.per_batch,), generator=self.generator)])

    def result(self) -> dict:
        m1, m2, m3, m4 = (self.s / self.n).tolist()
        var = m2 - m1 * m1
        c4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 ** 4
        return {"mean_token_norm": self.norm_sum / self.rows, "std": var ** 0.5, "kurtosis": c4 / var ** 2 - 3,
                "top1_abs": float(self.top[0]), "top2_abs": float(self.top[1]), "top3_abs": float(self.top[2]),
                "median_abs": float(torch.cat(self.sample).median())}


def profile_runner(lm, method: str) -> Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]:
    """(ids, mask) -> every layer's resid_post, by plain HF hooks, TransformerLens or nnsight; 'bare' returns []."""
    sites = [f"resid_post.{L}" for L in range(lm.n_layers)]
    if method == "bare":
        return lambda ids, mask: (lm.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False), [])[1]
    if method == "hf-hooks":
        stored = {}
        for L, block in enumerate(lm.model.get_submodule(lm.anatomy.family.layers)):
            def keep(module, args, out, L=L):  # transformers 5 blocks return a tensor, older ones a tuple
                stored[L] = out[0] if isinstance(out, tuple) else out
            block.register_forward_hook(keep)

        def run(ids, mask):
            lm.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
            return [stored.pop(L) for L in range(lm.n_layers)]
        return run
    if method in ("tl", "nnsight"):
        variant = (tl_variants if method == "tl" else nnsight_variants)(lm, {"resid_post": sites})[0]

        def run_peer(ids, mask):
            out = variant.run(ids, mask)  # one forward pass for every layer
            return [out[s] for s in sites]
        return run_peer
    raise ValueError(f"unknown profile method {method}")


def profile_loop(lm, batches, run) -> tuple[int, list[dict]]:
    """Stream batches through a `profile_runner` and keep SimpleStats per layer: (tokens counted, rows)."""
    stats = [SimpleStats(seed=L) for L in range(lm.n_layers)]
    tokens = 0
    with torch.inference_mode():
        for batch in batches:
            layers = run(batch.input_ids, batch.attention_mask)
            tokens += batch.n_tokens
            for stat, x in zip(stats, layers):
                stat.update(x[batch.count].float())
    return tokens, [s.result() for s in stats if s.n]
