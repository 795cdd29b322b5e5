"""Known-answer tests of extraction: every site against values computed by hand from the HF modules.

The reference values never come from lamina: they are built from `model(..., output_hidden_states=True)`,
the weights and submodules of the transformers model, and the textbook formulas (causal softmax attention,
RoPE, RMSNorm / LayerNorm, SiLU / GELU), one layer at a time from the model's own hidden state.
"""
from __future__ import annotations

import gc
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import MODEL_TYPES, SMALL_TYPES
from typer.testing import CliRunner

import lamina
from lamina.capture import Capture
from lamina.errors import SiteError

TEXT = "The cat sat on the mat because it was tired."
SHORT, LONG = "Hello world.", "She did not go to Paris last summer, but her brother did."
RTOL = 1e-5

SEQUENTIAL_KINDS = ("resid_pre", "q", "k", "v", "attn_out", "resid_mid", "mlp_pre", "mlp_post", "mlp_out", "resid_post")
MODEL_SITES = ("embed", "final_norm.input", "final_norm.scale", "final_norm.normalized", "final_norm", "logits")


# ---------------------------------------------------------------- reference values, by hand

def _assert_close(got: torch.Tensor, want: torch.Tensor, name: str, rtol: float = RTOL) -> None:
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    tol = rtol * max(1.0, float(want.abs().max()))
    diff = float((got.double() - want.double()).abs().max())
    assert diff <= tol, f"{name}: max |diff| {diff:.3g} > tolerance {tol:.3g}"


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, d_head]; cos/sin [T, rotary dims] (partial rotary: the rest passes through)."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    return torch.cat((xr * cos[:, None] + _rotate_half(xr) * sin[:, None], xp), dim=-1)


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v in float64; q [T, H, D], k/v [T, KV, D] -> [T, H * D]."""
    T, H, D = q.shape
    rep = H // k.shape[1]  # grouped-query: kv head j serves query heads j*rep .. (j+1)*rep - 1
    k, v = k.double().repeat_interleave(rep, dim=1), v.double().repeat_interleave(rep, dim=1)
    scores = torch.einsum("thd,shd->hts", q.double(), k) / math.sqrt(D)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, H * D).float()


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _conv1d(x: torch.Tensor, module) -> torch.Tensor:  # GPT-2's Conv1D: weight is [in, out]
    return x @ module.weight + module.bias


def _reference(lm, text: str) -> dict[str, torch.Tensor]:
    """Every site for one unpadded text, computed from the HF model without any lamina code."""
    model = lm.model
    config = model.config
    mt = config.model_type
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    T = ids.shape[1]
    pos = torch.arange(T)[None]
    H = config.num_attention_heads
    KV = getattr(config, "num_key_value_heads", None) or H
    D = getattr(config, "head_dim", None) or config.hidden_size // H
    ref: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
        hidden = [h[0] for h in out.hidden_states]
        N = len(hidden) - 1
        if mt == "gpt2":
            base, blocks, norm = model.transformer, model.transformer.h, model.transformer.ln_f
            embed = base.wte.weight[ids[0]] + base.wpe.weight[pos[0]]
        elif mt == "gpt_neox":
            base, blocks, norm = model.gpt_neox, model.gpt_neox.layers, model.gpt_neox.final_layer_norm
            embed = base.embed_in.weight[ids[0]]
        else:
            base, blocks, norm = model.model, model.model.layers, model.model.norm
            embed = base.embed_tokens.weight[ids[0]]
        assert len(blocks) == N
        _assert_close(embed, hidden[0], "reference embed vs hidden_states[0]", rtol=0)
        ref["embed"] = embed
        if mt != "gpt2":
            cos, sin = (t[0] for t in base.rotary_emb(hidden[0][None], pos))

        for L, block in enumerate(blocks):
            x = hidden[L]
            r = {"resid_pre": x}
            if mt == "gpt2":
                qkv = _conv1d(block.ln_1(x), block.attn.c_attn)
                q, k, v = (t.unflatten(-1, (H, D)) for t in qkv.split(config.hidden_size, dim=-1))
                r.update(q=q, k=k, v=v)
                r["attn_out"] = _conv1d(_causal_attention(q, k, v), block.attn.c_proj)
                r["resid_mid"] = x + r["attn_out"]
                r["mlp_pre"] = _conv1d(block.ln_2(r["resid_mid"]), block.mlp.c_fc)
                r["mlp_post"] = _gelu_new(r["mlp_pre"])
                r["mlp_out"] = _conv1d(r["mlp_post"], block.mlp.c_proj)
                r["resid_post"] = r["resid_mid"] + r["mlp_out"]
            elif mt == "gpt_neox":
                assert config.use_parallel_residual and config.hidden_act == "gelu"
                attn, mlp = block.attention, block.mlp
                qkv = attn.query_key_value(block.input_layernorm(x)).unflatten(-1, (H, 3 * D))  # per head [q|k|v]
                q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
                r.update(q=q, k=k, v=v)
                r["attn_out"] = attn.dense(_causal_attention(_rope(q, cos, sin), _rope(k, cos, sin), v))
                r["mlp_pre"] = mlp.dense_h_to_4h(block.post_attention_layernorm(x))  # parallel: from resid_pre
                r["mlp_post"] = F.gelu(r["mlp_pre"])
                r["mlp_out"] = mlp.dense_4h_to_h(r["mlp_post"])
                r["resid_post"] = x + r["attn_out"] + r["mlp_out"]
            else:  # llama, mistral, qwen2, qwen3, phi3
                assert config.hidden_act == "silu"
                attn, mlp = block.self_attn, block.mlp
                ln1 = block.input_layernorm(x)
                if mt == "phi3":  # fused [q (H heads) | k (KV heads) | v (KV heads)]
                    qkv = attn.qkv_proj(ln1)
                    q, k, v = qkv[..., :H * D], qkv[..., H * D:(H + KV) * D], qkv[..., (H + KV) * D:]
                else:
                    q, k, v = attn.q_proj(ln1), attn.k_proj(ln1), attn.v_proj(ln1)
                q, k, v = q.unflatten(-1, (H, D)), k.unflatten(-1, (KV, D)), v.unflatten(-1, (KV, D))
                r.update(q=q, k=k, v=v)  # before RoPE (and before Qwen3's q_norm / k_norm)
                qr, kr = (attn.q_norm(q), attn.k_norm(k)) if mt == "qwen3" else (q, k)
                r["attn_out"] = attn.o_proj(_causal_attention(_rope(qr, cos, sin), _rope(kr, cos, sin), v))
                r["resid_mid"] = x + r["attn_out"]
                ln2 = block.post_attention_layernorm(r["resid_mid"])
                if mt == "phi3":  # fused [gate | up]
                    gate, up = mlp.gate_up_proj(ln2).chunk(2, dim=-1)
                else:
                    gate, up = mlp.gate_proj(ln2), mlp.up_proj(ln2)
                r["mlp_pre"] = gate
                r["mlp_post"] = gate * torch.sigmoid(gate) * up
                r["mlp_out"] = mlp.down_proj(r["mlp_post"])
                r["resid_post"] = r["resid_mid"] + r["mlp_out"]
            if L < N - 1:  # the reference itself must reproduce the model's next hidden state
                _assert_close(r["resid_post"], hidden[L + 1], f"reference resid_post.{L} vs hidden_states[{L + 1}]")
                r["resid_post"] = hidden[L + 1]
            ref.update({f"{kind}.{L}": value for kind, value in r.items()})

        x = ref[f"resid_post.{N - 1}"]
        ref["final_norm.input"] = x
        if isinstance(norm, torch.nn.LayerNorm):
            centered = x - x.mean(-1, keepdim=True)
            scale = torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + norm.eps)
            normalized = centered / scale
            affine = normalized * norm.weight + norm.bias
        else:
            scale = torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
            normalized = x / scale
            affine = normalized * norm.weight
        _assert_close(affine, hidden[N], "reference: normalized * weight (+ bias) vs hidden_states[N]")
        _assert_close(norm(x), hidden[N], "reference: final norm module(final_norm.input) vs hidden_states[N]")
        ref.update({"final_norm.scale": scale, "final_norm.normalized": normalized, "final_norm": hidden[N]})
        ref["logits"] = out.logits[0]
        ref.update({f"hidden.{i}": h for i, h in enumerate(hidden)})
    return {name: value[None] for name, value in ref.items()}  # add the batch dimension


def _all_sites(model_type: str, n_layers: int) -> list[str]:
    kinds = [k for k in SEQUENTIAL_KINDS if not (k == "resid_mid" and model_type == "gpt_neox")]
    return [f"{k}.{L}" for L in range(n_layers) for k in kinds] + list(MODEL_SITES) + [f"hidden.{i}" for i in range(n_layers + 1)]


# ---------------------------------------------------------------- 1. every site, every architecture

@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_site_matches_hand_computation(models, model_type):
    lm = models(model_type)
    ref = _reference(lm, TEXT)
    N = lm.model.config.num_hidden_layers
    names = _all_sites(model_type, N)
    acts = lm.capture([TEXT], sites=names, stop_early=False)
    assert set(acts) == set(names) == set(ref)
    for name in names:
        _assert_close(acts[name], ref[name], f"{model_type} {name}")
    # q/k/v are split into heads; grouped-query models have fewer k/v heads
    H = lm.model.config.num_attention_heads
    KV = getattr(lm.model.config, "num_key_value_heads", None) or H
    assert acts["q.0"].shape[-2] == H and acts["k.0"].shape[-2] == KV and acts["v.0"].shape[-2] == KV
    # the normalized final residual times the norm's weight (and plus its bias) is the norm's output
    norm = lm.model.get_submodule({"gpt2": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm"}
                                  .get(model_type, "model.norm"))
    affine = acts["final_norm.normalized"] * norm.weight.detach()
    if getattr(norm, "bias", None) is not None:
        affine = affine + norm.bias.detach()
    _assert_close(affine, acts["final_norm"], f"{model_type} final_norm.normalized * weight (+ bias)")


@pytest.mark.parametrize("model_type", SMALL_TYPES)
def test_early_stopped_sites_match_hand_computation(models, model_type):
    """With early stop (the default) the values are the same as the full pass's, site by site."""
    lm = models(model_type)
    ref = _reference(lm, TEXT)
    names = ["embed", "q.0", "k.1", "mlp_post.1", "attn_out.2", "resid_post.2"]
    acts = lm.capture([TEXT], sites=names)
    for name in names:
        _assert_close(acts[name], ref[name], f"{model_type} {name} (early stop)")


def test_parallel_block_has_no_resid_mid(neox):
    assert neox.anatomy.parallel
    for bad in (["resid_mid.0"], ["blocks.1.hook_resid_mid"], ["resid_mid"], "resid_mid.3"):
        with pytest.raises(SiteError):
            neox.capture([TEXT], sites=bad)
    with pytest.raises(SiteError, match="resid_mid"):
        neox.sites("resid_mid.0")


# ---------------------------------------------------------------- 2. the founding experiment

@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_verify_founding_experiment(models, model_type):
    lm = models(model_type)
    N = lm.n_layers
    result = lamina.verify(lm)
    for key in ("model", "architecture", "n_layers", "final_norm_module", "layers", "final", "hidden_state_map", "ok"):
        assert key in result
    assert result["ok"] is True
    assert result["n_layers"] == N == len(result["layers"])
    assert result["final_norm_module"] == {"gpt2": "transformer.ln_f", "llama": "model.norm"}[model_type]
    for row in result["layers"][:-1]:
        assert row["hidden_index"] == row["layer"] + 1
        assert row["max_abs_diff"] == 0.0, row
    final = result["final"]
    assert result["layers"][-1]["max_abs_diff"] > 0  # hidden_states[N] is after the final norm
    assert final["raw_max_abs_diff"] > 0
    assert final["normed_max_abs_diff"] <= 1e-5 * final["normed_max_abs"]
    expected = {"0": "embed", **{str(i): f"resid_post.{i - 1}" for i in range(1, N)}, str(N): "final_norm"}
    assert result["hidden_state_map"] == expected
    json.dumps(result)  # serialisable as printed by `lamina verify --json`


# ---------------------------------------------------------------- 3. the real GPT-2 tokenizer

def test_gpt2_tokenizer_known_ids(gpt2):
    assert gpt2.tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert gpt2.tokenize("Hello world")["input_ids"].tolist() == [[15496, 995]]
    assert gpt2.tokenizer.eos_token_id == 50256 and len(gpt2.tokenizer) == 50257
    assert gpt2.model.config.vocab_size == 50257
    c = gpt2.model.config  # GPT-2 small's shape
    assert (c.n_layer, c.n_embd, c.n_head, 4 * c.n_embd) == (12, 768, 12, 3072)


# ---------------------------------------------------------------- 4. hooks are removed on every exit

def _hooks(model: torch.nn.Module) -> dict:
    """Every module's hook tables (ids and callables), as plain copies."""
    snap = {}
    for name, m in model.named_modules():
        tables = (m._forward_hooks, m._forward_pre_hooks, m._forward_hooks_with_kwargs,
                  m._forward_pre_hooks_with_kwargs, m._forward_hooks_always_called, m._backward_hooks)
        snap[name] = tuple(dict(t) for t in tables)
    return snap


class _Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1


def _raise(exc):
    def hook(*args, **kwargs):
        raise exc
    return hook


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_hooks_removed_when_forward_raises(llama, exc):
    model, layers = llama.model, llama.model.model.layers
    counter = _Counter()
    handles = [layers[0].register_forward_hook(counter),  # a user's hook on a module lamina also hooks
               layers[-1].register_forward_pre_hook(_raise(exc))]
    try:
        before = _hooks(model)
        with pytest.raises(type(exc)):
            llama.capture([TEXT], sites=["resid_post", "mlp_post.3", "q.1", "logits"], stop_early=False)
        assert _hooks(model) == before
        assert counter.calls == 1
        handles.pop().remove()  # the test's own raising hook
        acts = llama.capture([TEXT], sites=["resid_post.0"])
        assert counter.calls == 2  # the user's hook is still there and still called
        assert acts["resid_post.0"].shape[:2] == (1, len(llama.tokenizer(TEXT)["input_ids"]))
        with torch.no_grad():
            model(**llama.tokenize(TEXT))
        assert counter.calls == 3
    finally:
        for h in handles:
            h.remove()


def test_hooks_removed_after_normal_and_early_stopped_capture(llama):
    before = _hooks(llama.model)
    llama.capture([TEXT, SHORT], sites=["resid_post", "q", "final_norm.scale", "logits"], stop_early=False)
    assert _hooks(llama.model) == before
    llama.capture([TEXT, SHORT], sites=["mlp_post.1"], stop_early=True)
    assert _hooks(llama.model) == before


def test_capture_hooks_only_requested_modules_and_cleans_up_in_generators(llama):
    model = llama.model
    before = _hooks(model)
    sites = llama.sites(["resid_post.1", "mlp_post.1", "q.0"])

    def gen():
        with Capture(model, llama.anatomy, sites) as cap:
            yield cap
            yield None

    g = gen()
    next(g)
    during = _hooks(model)
    changed = {name for name in during if during[name] != before[name]}
    assert changed == {"model.layers.1", "model.layers.1.mlp.down_proj", "model.layers.0.self_attn.q_proj"}
    g.close()  # closed early, inside the with block
    assert _hooks(model) == before

    g = gen()
    next(g)
    assert _hooks(model) != before
    with pytest.raises(ValueError):
        g.throw(ValueError("thrown into the generator"))
    assert _hooks(model) == before

    g = gen()
    next(g)
    del g  # abandoned: closed by garbage collection
    gc.collect()
    assert _hooks(model) == before


# ---------------------------------------------------------------- 5. early stop

def test_early_stop_equals_full_run_and_skips_later_blocks(llama):
    model = llama.model
    layers = model.model.layers
    counters = {name: _Counter() for name in ("block2", "last_block", "norm", "lm_head")}
    handles = [layers[2].register_forward_hook(counters["block2"]),
               layers[-1].register_forward_hook(counters["last_block"]),
               model.model.norm.register_forward_hook(counters["norm"]),
               model.lm_head.register_forward_hook(counters["lm_head"])]
    sites = ["resid_post.1", "mlp_post.1", "q.0"]
    texts = [TEXT, SHORT]
    try:
        full = llama.capture(texts, sites=sites, stop_early=False)
        assert {k: c.calls for k, c in counters.items()} == {"block2": 1, "last_block": 1, "norm": 1, "lm_head": 0}
        early = llama.capture(texts, sites=sites, stop_early=True)
        assert {k: c.calls for k, c in counters.items()} == {"block2": 1, "last_block": 1, "norm": 1, "lm_head": 0}
        for name in sites:
            assert torch.equal(full[name].isnan(), early[name].isnan())
            assert torch.equal(full[name].nan_to_num(), early[name].nan_to_num()), name
        # the deepest block's output: neither the final norm nor the unembedding runs
        llama.capture(texts, sites=["resid_post.3"])
        assert (counters["last_block"].calls, counters["norm"].calls, counters["lm_head"].calls) == (2, 1, 0)
        # the final norm's parts need the norm's input only
        llama.capture(texts, sites=["final_norm.scale"])
        assert (counters["last_block"].calls, counters["norm"].calls, counters["lm_head"].calls) == (3, 1, 0)
        # logits need the unembedding, once
        acts = llama.capture(texts, sites=["resid_post.1", "logits"])
        assert counters["lm_head"].calls == 1
        assert acts["logits"].shape[-1] == model.config.vocab_size
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- 6. padding

@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_padding_is_nan_and_real_tokens_match_single_text(models, model_type):
    lm = models(model_type)
    N = lm.n_layers
    names = _all_sites(model_type, N)
    if model_type == "gpt2":  # 12 layers: every kind on the first and last block only
        names = [n for n in names if n.rsplit(".", 1)[-1] in ("0", str(N - 1)) or n in MODEL_SITES
                 or n.startswith("hidden.")]
    batch = lm.capture([SHORT, LONG], sites=names)
    lengths = [len(lm.tokenizer(t)["input_ids"]) for t in (SHORT, LONG)]
    assert lengths[0] < lengths[1]
    assert batch.attention_mask.sum(1).tolist() == lengths
    singles = [lm.capture([t], sites=names) for t in (SHORT, LONG)]
    for name in names:
        x = batch[name]
        assert x.shape[:2] == (2, lengths[1]), name
        assert x[0, lengths[0]:].isnan().all(), f"{name}: padding is not NaN"
        for i, n in enumerate(lengths):
            real = x[i, :n]
            assert not real.isnan().any(), name
            _assert_close(real, singles[i][name][0], f"{model_type} {name} text {i} (padded batch vs alone)")
        flat = batch.tokens(name)
        assert flat.shape == (sum(lengths), *x.shape[2:]) and not flat.isnan().any(), name


# ---------------------------------------------------------------- 8. command line

def test_cli_verify_json():
    from lamina.cli import app

    result = CliRunner().invoke(app, ["verify", "--model", "random:llama", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    assert payload["model"] == "random:llama" and payload["n_layers"] == 4
    assert payload["hidden_state_map"]["4"] == "final_norm"


@pytest.mark.parametrize("spec", ["nosuch:model", "random:no_such_type"])
def test_cli_bad_model_spec_exits_2_with_one_line(spec):
    from lamina.cli import app

    result = CliRunner().invoke(app, ["verify", "--model", spec, "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and spec in lines[0]
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
