"""The families added after GPT-2, Llama, Phi-3 and GPT-NeoX, each proven on a random model of its type.

For every model type: `lamina.load` passes the anatomy check (and passes it again after the norm weights
and biases are redrawn, so a skipped norm cannot hide behind weights of 1 and biases of 0); `verify`
measures the standard hidden-state map; and q, k, v, mlp_pre, mlp_post and mlp_out equal a computation by
hand from the transformers modules (called directly, no hooks), written from each modeling file rather
than from lamina's tables. The hand-computed MLP branch, added to resid_mid, must reproduce the model's
own next hidden state, which ties resid_mid to the model's output as well.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from conftest import _break_symmetry

import lamina
from lamina.analyses.vocab.projections import norm_weight
from lamina.anatomy import anatomy_for
from lamina.errors import UnsupportedArchitectureError
from lamina.models.language_model import LanguageModel
from lamina.models.random_models import load_random

TEXT = "The cat sat on the mat because it was tired."
RTOL = 1e-5


# ---------------------------------------------------------------- the computation by hand, per family

def _heads(x: torch.Tensor, d: int) -> torch.Tensor:
    return x.unflatten(-1, (-1, d))


def _separate(attn, d):
    return lambda x: tuple(_heads(getattr(attn, f"{w}_proj")(x), d) for w in "qkv")


def _plain_mlp(fc_in, act, fc_out):
    """mlp_pre = fc_in(x), mlp_post = act(mlp_pre), mlp_out = fc_out(mlp_post)."""
    def run(x):
        pre = fc_in(x)
        post = act(pre)
        return pre, post, fc_out(post)
    return run


def _gated_mlp(mlp, post_norm=None):
    """mlp_pre = gate(x), mlp_post = act(gate(x)) * up(x), mlp_out = down(mlp_post) [-> post-MLP norm]."""
    def run(x):
        pre = mlp.gate_proj(x)
        post = mlp.act_fn(pre) * mlp.up_proj(x)
        out = mlp.down_proj(post)
        return pre, post, post_norm(out) if post_norm is not None else out
    return run


def _identity(x):
    return x


@dataclass
class Ref:
    attn_norm: Callable        # block input -> attention input
    qkv: Callable              # attention input -> (q, k, v), each [T, heads, d_head]
    mlp_norm: Callable | None  # resid_mid -> MLP input; None: parallel block, the MLP reads attn_norm(x)
    mlp: Callable              # MLP input -> (mlp_pre, mlp_post, mlp_out)
    parallel_mlp_norm: Callable | None = None  # parallel block whose MLP has its own norm of x (Falcon-40B)


def _llama_like(b, d):
    return Ref(b.input_layernorm, _separate(b.self_attn, d), b.post_attention_layernorm, _gated_mlp(b.mlp))


def _gptj(b, d):
    return Ref(b.ln_1, _separate(b.attn, d), None, _plain_mlp(b.mlp.fc_in, b.mlp.act, b.mlp.fc_out))


def _codegen(b, d):
    def qkv(x):  # CodeGenAttention.forward: 4 chunks, each [q | v | k]
        fused = b.attn.qkv_proj(x)
        local = fused.shape[-1] // 3 // 4
        q, v, k = fused.view(*x.shape[:-1], 4, 3 * local).split(local, dim=-1)
        return tuple(t.reshape(*x.shape[:-1], -1, d) for t in (q, k, v))
    return Ref(b.ln_1, qkv, None, _plain_mlp(b.mlp.fc_in, b.mlp.act, b.mlp.fc_out))


def _gpt_neo(b, d):
    return Ref(b.ln_1, _separate(b.attn.attention, d), b.ln_2, _plain_mlp(b.mlp.c_fc, b.mlp.act, b.mlp.c_proj))


def _opt(b, d):
    return Ref(b.self_attn_layer_norm, _separate(b.self_attn, d), b.final_layer_norm,
               _plain_mlp(b.fc1, b.activation_fn, b.fc2))


def _gemma2(b, d):
    return Ref(b.input_layernorm, _separate(b.self_attn, d), b.pre_feedforward_layernorm,
               _gated_mlp(b.mlp, b.post_feedforward_layernorm))


def _olmo2(b, d):  # no pre-norms: attention and MLP read the residual stream directly
    return Ref(_identity, _separate(b.self_attn, d), _identity, _gated_mlp(b.mlp, b.post_feedforward_layernorm))


def _phi(b, d):
    return Ref(b.input_layernorm, _separate(b.self_attn, d), None,
               _plain_mlp(b.mlp.fc1, b.mlp.activation_fn, b.mlp.fc2))


def _stablelm(b, d):
    mlp_norm = b.post_attention_layernorm  # None when use_parallel_residual
    return Ref(b.input_layernorm, _separate(b.self_attn, d), mlp_norm, _gated_mlp(b.mlp))


def _starcoder2(b, d):
    return Ref(b.input_layernorm, _separate(b.self_attn, d), b.post_attention_layernorm,
               _plain_mlp(b.mlp.c_fc, b.mlp.act, b.mlp.c_proj))


def _bloom(b, d):
    def qkv(x):  # BloomAttention._reshape: view(batch, seq, heads, 3, head_dim)
        fused = b.self_attention.query_key_value(x).view(*x.shape[:-1], -1, 3, d)
        return fused[..., 0, :], fused[..., 1, :], fused[..., 2, :]
    return Ref(b.input_layernorm, qkv, b.post_attention_layernorm,
               _plain_mlp(b.mlp.dense_h_to_4h, b.mlp.gelu_impl, b.mlp.dense_4h_to_h))


def _gpt_bigcode(b, d):
    attn = b.attn

    def qkv(x):  # GPTBigCodeAttention.forward
        fused = attn.c_attn(x)
        if attn.multi_query:     # [q (d_model) | k (d_head) | v (d_head)]: one shared k/v head
            q, k, v = fused.split((attn.embed_dim, attn.kv_dim, attn.kv_dim), dim=-1)
            return _heads(q, d), _heads(k, d), _heads(v, d)
        q, k, v = fused.view(*x.shape[:-1], -1, 3 * d).split(d, dim=-1)  # per head [q | k | v]
        return q, k, v
    return Ref(b.ln_1, qkv, b.ln_2, _plain_mlp(b.mlp.c_fc, b.mlp.act, b.mlp.c_proj))


def _falcon(b, d):
    attn, config = b.self_attention, b.config

    def qkv(x):  # FalconAttention._split_heads, keeping k/v at their own head count
        fused, h = attn.query_key_value(x), attn.num_heads
        if attn.new_decoder_architecture:        # per k/v group [q (h / kv heads) | k | v]
            g = fused.view(*x.shape[:-1], -1, h // attn.num_kv_heads + 2, d)
            return g[..., :-2, :].flatten(-3, -2), g[..., -2, :], g[..., -1, :]
        if not attn.multi_query:                 # per head [q_h | k_h | v_h]
            f = fused.view(*x.shape[:-1], h, 3, d)
            return f[..., 0, :], f[..., 1, :], f[..., 2, :]
        f = fused.view(*x.shape[:-1], h + 2, d)  # [q (h heads) | k (1) | v (1)]
        return f[..., :-2, :], f[..., [-2], :], f[..., [-1], :]
    mlp = _plain_mlp(b.mlp.dense_h_to_4h, b.mlp.act, b.mlp.dense_4h_to_h)
    if config.new_decoder_architecture and config.num_ln_in_parallel_attn == 2:  # ln_attn and ln_mlp
        return Ref(b.ln_attn, qkv, None, mlp, parallel_mlp_norm=b.ln_mlp)
    if config.parallel_attn:                     # one norm read by both branches
        return Ref(b.input_layernorm, qkv, None, mlp)
    return Ref(b.input_layernorm, qkv, b.post_attention_layernorm, mlp)  # sequential (Falcon-RW)


# model type -> (reference, (heads, kv heads, d_head) of its random model, family expected)
NEW_TYPES = {
    "gptj": (_gptj, (4, 4, 32), "gptj"),
    "codegen": (_codegen, (4, 4, 32), "codegen"),
    "gpt_neo": (_gpt_neo, (4, 4, 32), "gpt_neo"),
    "opt": (_opt, (4, 4, 32), "opt"),
    "gemma": (_llama_like, (4, 1, 32), "gemma"),
    "gemma2": (_gemma2, (4, 2, 32), "gemma2"),
    "gemma3_text": (_gemma2, (4, 2, 32), "gemma2"),
    "olmo2": (_olmo2, (4, 2, 32), "olmo2"),
    "olmo3": (_olmo2, (4, 2, 32), "olmo2"),
    "exaone4": (_olmo2, (4, 2, 32), "olmo2"),
    "phi": (_phi, (4, 4, 32), "phi"),
    "stablelm": (_stablelm, (4, 2, 32), "stablelm"),
    "starcoder2": (_starcoder2, (4, 2, 32), "starcoder2"),
    "bloom": (_bloom, (4, 4, 32), "bloom"),
    "gpt_bigcode": (_gpt_bigcode, (4, 1, 32), "gpt_bigcode"),
    "smollm3": (_llama_like, (4, 2, 32), "llama"),
    "helium": (_llama_like, (4, 2, 32), "llama"),
    "ernie4_5": (_llama_like, (4, 2, 32), "llama"),
    "seed_oss": (_llama_like, (4, 2, 32), "llama"),
    "falcon": (_falcon, (4, 1, 32), "falcon"),
    "olmo": (_llama_like, (4, 4, 32), "olmo"),
}
PARALLEL = {"gptj", "codegen", "phi", "falcon"}


def _assert_close(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    tol = RTOL * max(1.0, float(want.abs().max()))
    diff = float((got.double() - want.double()).abs().max())
    assert diff <= tol, f"{name}: max |diff| {diff:.3g} > tolerance {tol:.3g}"


def _prove_by_hand(lm, reference, shape) -> None:
    """q/k/v and the MLP sites against the hand computation, layer by layer from the model's hidden states."""
    heads, kv_heads, d_head = shape
    N = lm.n_layers
    batch = lm.tokenize([TEXT])
    kinds = ["q", "k", "v", "attn_out", "mlp_pre", "mlp_post", "mlp_out", "resid_post"]
    kinds += [] if lm.anatomy.parallel else ["resid_mid"]
    acts = lm.capture(batch, kinds, stop_early=False)
    final_norm = lm.model.get_submodule(lm.anatomy.family.final_norm)
    with torch.inference_mode():
        hidden = lm.model(**batch, output_hidden_states=True).hidden_states  # the model's own, no hooks
        for L in range(N):
            block = lm.model.get_submodule(lm.anatomy.block(L))
            ref = reference(block, d_head)
            x = hidden[L]                                   # block L's input
            attn_in = ref.attn_norm(x)
            for kind, want, n in zip("qkv", ref.qkv(attn_in), (heads, kv_heads, kv_heads)):
                assert tuple(acts[f"{kind}.{L}"].shape[-2:]) == (n, d_head), f"{kind}.{L} heads x d_head"
                _assert_close(acts[f"{kind}.{L}"], want, f"{kind}.{L}")
            if ref.mlp_norm is None:                        # parallel: both branches read the block input
                base = x + acts[f"attn_out.{L}"]
                mlp_in = ref.parallel_mlp_norm(x) if ref.parallel_mlp_norm else attn_in
            else:
                base = acts[f"resid_mid.{L}"]
                mlp_in = ref.mlp_norm(base)
            pre, post, out = ref.mlp(mlp_in)
            _assert_close(acts[f"mlp_pre.{L}"], pre, f"mlp_pre.{L}")
            _assert_close(acts[f"mlp_post.{L}"], post, f"mlp_post.{L}")
            _assert_close(acts[f"mlp_out.{L}"], out, f"mlp_out.{L}")
            nxt = base + out                                # must be the model's own next hidden state
            _assert_close(final_norm(nxt) if L == N - 1 else nxt, hidden[L + 1], f"hand-built hidden.{L + 1}")


@pytest.mark.parametrize("model_type", list(NEW_TYPES))
def test_family(models, model_type):
    reference, shape, family = NEW_TYPES[model_type]
    lm = models(model_type)                      # lamina.load: the anatomy check ran at load
    assert lm.anatomy.family.name == family
    assert lm.anatomy.parallel == (model_type in PARALLEL)
    assert (lm.anatomy.n_heads, lm.anatomy.n_kv_heads, lm.anatomy.d_head) == shape
    lm.check_anatomy()                            # again, with every norm weight and bias redrawn
    report = lamina.verify(lm)
    assert report["ok"], report
    N = lm.n_layers
    assert report["hidden_state_map"] == {
        "0": "embed", **{str(i): f"resid_post.{i - 1}" for i in range(1, N)}, str(N): "final_norm"}
    _prove_by_hand(lm, reference, shape)


@pytest.mark.parametrize("model_type, overrides, parallel, kv_heads", [
    ("stablelm", {"use_parallel_residual": True}, True, 2),   # parallel attention and MLP
    ("gpt_bigcode", {"multi_query": False}, False, 4),        # per-head interleaved c_attn
    ("falcon", {"new_decoder_architecture": True, "num_kv_heads": 2}, True, 2),  # 40B/180B: ln_attn, ln_mlp
    ("falcon", {"new_decoder_architecture": True, "num_kv_heads": 2, "num_ln_in_parallel_attn": 1}, True, 2),
    ("falcon", {"parallel_attn": False, "multi_query": False, "alibi": True}, False, 4),  # Falcon-RW
    ("olmo", {"clip_qkv": 0.05}, False, 4),                   # OLMo 1.7: q/k/v clamped in place
])
def test_config_variants(model_type, overrides, parallel, kv_heads):
    """Config flags that change the block: the same table must follow them."""
    model, tokenizer = load_random(model_type, **overrides)
    _break_symmetry(model)
    lm = LanguageModel(model.eval(), tokenizer, anatomy_for(model), f"random:{model_type}")
    assert lm.anatomy.parallel == parallel and lm.anatomy.n_kv_heads == kv_heads
    assert ("resid_mid" in lm.anatomy.kinds) != parallel
    lm.check_anatomy()
    assert lamina.verify(lm)["ok"]
    reference, (heads, _, d_head), _ = NEW_TYPES[model_type]
    _prove_by_hand(lm, reference, (heads, kv_heads, d_head))


def test_opt_flattened_mlp_is_restored(models):
    """OPT's MLP runs on [batch*tokens, d]; every site still comes back as [batch, tokens, ...]."""
    lm = models("opt")
    acts = lm.capture(["Hello world.", "She did not go to Paris last summer, but her brother did."],
                      ["resid_mid.1", "mlp_pre.1", "mlp_post.1", "mlp_out.1", "q.1"])
    tokens = acts.attention_mask.shape[1]
    assert acts["resid_mid.1"].shape == (2, tokens, 128)
    assert acts["mlp_post.1"].shape == (2, tokens, 512)
    assert acts["q.1"].shape == (2, tokens, 4, 32)
    assert torch.isnan(acts["mlp_post.1"][0, ~acts.attention_mask[0].bool()]).all()
    assert not torch.isnan(acts.tokens("mlp_post.1")).any()


@pytest.mark.parametrize("spec", ["random:bert", "random:mamba"])
def test_unsupported_architecture_names_the_supported_ones(spec):
    with pytest.raises(UnsupportedArchitectureError) as err:
        lamina.load(spec)
    message = str(err.value)
    assert spec.split(":")[1] in message
    for model_type in ("gpt2", "llama", "gpt_neox", "phi3", *NEW_TYPES):
        assert model_type in message, f"{model_type} missing from: {message}"
    assert "docs/SITES.md" in message


def test_olmo_final_norm_eps_is_the_hard_coded_one(models):
    """OlmoLayerNorm stores no eps: final_norm.scale must use the 1e-5 its forward passes to F.layer_norm.

    At a variance of about 1e-6 the eps dominates the divisor, so any other eps fails by far more than RTOL.
    """
    lm = models("olmo")
    assert lm.anatomy.norm_eps == 1e-5
    x = torch.randn(3, 7, lm.anatomy.d_model, generator=torch.Generator().manual_seed(0)) * 1e-3
    scale, normalized = lm.anatomy.final_norm_parts(x)
    with torch.inference_mode():
        want = lm.model.get_submodule(lm.anatomy.family.final_norm)(x)  # no weight, no bias
    _assert_close(normalized, want, "final_norm.normalized")
    _assert_close(scale.squeeze(-1), torch.sqrt(x.var(-1, unbiased=False) + 1e-5), "final_norm.scale")
    _assert_close(norm_weight(lm), torch.ones(lm.anatomy.d_model), "the final norm's gain")  # no weight: 1


@pytest.mark.parametrize("model_type, overrides, site", [
    ("falcon", {}, "mlp_out.1"),                   # mlp_output += attention_output after the MLP returns
    ("olmo", {"clip_qkv": 0.05}, "q.1"),            # query_states.clamp_(...) after q_proj returns
])
def test_sites_written_in_place_are_the_same_with_or_without_early_stop(model_type, overrides, site):
    """A tensor the model modifies after the hook must be captured as it was at the hook, whether or not
    the forward pass goes on past it (early stop ends it at the hook; a later site lets it run on)."""
    model, tokenizer = load_random(model_type, **overrides)
    lm = LanguageModel(model.eval(), tokenizer, anatomy_for(model), f"random:{model_type}")
    alone = lm.capture([TEXT], [site], stop_early=True)[site]            # the pass ends at the hook
    with_later = lm.capture([TEXT], [site, "resid_post.3"], stop_early=True)[site]  # it runs on
    if model_type == "olmo":  # the clamp would change this tensor: some values lie beyond the clip
        assert float(alone.abs().max()) > 0.05
    torch.testing.assert_close(with_later, alone, rtol=0, atol=0)
