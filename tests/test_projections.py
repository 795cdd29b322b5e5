"""Vocabulary projections against planted neurons, the modules' own outputs, captures and scipy.

Weights are planted in each module's native layout (GPT-2's Conv1D stores [in, out], nn.Linear [out, in])
and restored afterwards, since the session's random models are shared between test files.
"""
from __future__ import annotations

import contextlib
import json

import pytest
import torch
from typer.testing import CliRunner

from lamina.analyses.vocab.projections import (
    category_projection,
    input_vectors,
    norm_gain,
    norm_weight,
    output_vectors,
    project,
    qkv_vectors,
)
from lamina.errors import SiteError

CAT = 3797  # " cat" in the GPT-2 tokenizer, which every random model uses
# Conv1D, fused and multi-query layouts
TYPES = ("gpt2", "llama", "phi3", "gpt_neox", "gptj", "opt", "bloom", "gpt_bigcode")


@contextlib.contextmanager
def planted(module: torch.nn.Module):
    """Yield the module's weight for in-place edits; put the original values back on exit."""
    saved = module.weight.detach().clone()
    try:
        yield module.weight.data
    finally:
        module.weight.data.copy_(saved)


def _down(lm, layer):
    return lm.model.get_submodule(f"{lm.anatomy.block(layer)}.{lm.anatomy.family.mlp_down}")


def _set_output(weight, lm, i, vec):
    if lm.anatomy.family.name == "gpt2":
        weight[i, :] = vec        # Conv1D [in = neurons, out = d_model]
    else:
        weight[:, i] = vec        # Linear [out = d_model, in = neurons]


def _basis_response(module, n_in):
    """[n_in, out]: what the module adds per unit of each input coordinate (bias removed)."""
    with torch.no_grad():
        return module(torch.eye(n_in)) - module(torch.zeros(1, n_in))


@pytest.mark.parametrize("model_type", TYPES)
def test_vectors_follow_each_weight_layout(models, model_type):
    lm = models(model_type)
    L = 1
    down = _down(lm, L)
    w_out = output_vectors(lm, L)
    torch.testing.assert_close(w_out, _basis_response(down, w_out.shape[0]), atol=1e-6, rtol=1e-5)
    block = lm.model.get_submodule(lm.anatomy.block(L))
    for role, w in input_vectors(lm, L).items():
        path = lm.anatomy.family.mlp_in.get(role) or lm.anatomy.family.mlp_in["gate_up"]
        full = _basis_response(block.get_submodule(path), lm.anatomy.d_model).T      # [out, d]
        if "gate_up" in lm.anatomy.family.mlp_in:
            full = full.chunk(2)[0 if role == "gate" else 1]
        torch.testing.assert_close(w, full, atol=1e-6, rtol=1e-5)
        assert w.shape[0] == w_out.shape[0]


@pytest.mark.parametrize("model_type, offset", [("gpt2", 0.0), ("llama", 0.0), ("gemma2", 1.0)])
def test_norm_gain_is_measured_whatever_the_convention(models, model_type, offset):
    """LayerNorm and RMSNorm multiply by weight; Gemma's norms by 1 + weight (bias, if any, cancels)."""
    lm = models(model_type)
    weight = lm.model.get_submodule(lm.anatomy.family.final_norm).weight.detach()
    torch.testing.assert_close(norm_weight(lm), weight + offset, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type, offset", [("olmo2", 0.0), ("gemma2", 1.0)])
def test_post_norm_blocks_scale_the_output_vector_by_the_post_norm_gain(models, model_type, offset):
    lm = models(model_type)
    L = 1
    post = lm.model.get_submodule(f"{lm.anatomy.block(L)}.post_feedforward_layernorm")
    torch.testing.assert_close(norm_gain(post, lm.anatomy.d_model), post.weight.detach() + offset, atol=1e-5, rtol=1e-5)
    w_out = output_vectors(lm, L)
    want = _basis_response(_down(lm, L), w_out.shape[0]) * (post.weight.detach() + offset)
    torch.testing.assert_close(w_out, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("model_type", TYPES)
def test_qkv_rows_are_the_captured_neurons(models, model_type):
    """q.L:h*d_head+j read through its row must move with the captured q[..., h, j] (bias cancels)."""
    lm = models(model_type)
    L = 1
    f = lm.anatomy.family
    path = f.sites["qkv" if "qkv" in f.sites else "q"][0]
    seen = {}
    module = lm.model.get_submodule(f"{lm.anatomy.block(L)}.{path}")
    handle = module.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach()))
    try:
        acts = lm.capture(["The cat sat on the mat."], ["q.1", "k.1", "v.1"])
    finally:
        handle.remove()
    x = seen["x"][0]                                                            # [t, d]
    for kind in ("q", "k", "v"):
        got = acts[f"{kind}.1"][0].flatten(-2)                                  # [t, heads * d_head]
        want = x @ qkv_vectors(lm, kind, L).T
        torch.testing.assert_close(got[1:] - got[:1], want[1:] - want[:1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_planted_output_neuron_promotes_and_suppresses_cat(models, model_type):
    lm = models(model_type)
    L, i = 2, 17
    w_u = lm.model.get_submodule(lm.anatomy.family.unembed).weight.detach()    # nn.Linear [vocab, d]
    with planted(_down(lm, L)) as weight:
        _set_output(weight, lm, i, w_u[CAT])
        df = project(lm, f"mlp_post.{L}:{i}", k=5)
        for view in ("raw", "with final norm weight"):
            top = df[(df["view"] == view) & (df["direction"] == "promoted")].iloc[0]
            assert (top["token_id"], top["token"]) == (CAT, " cat")
        g = lm.model.get_submodule(lm.anatomy.family.final_norm).weight.detach()
        normed = df[(df["view"] == "with final norm weight") & (df["direction"] == "promoted")].iloc[0]
        assert normed["score"] == pytest.approx(float((w_u[CAT] * g) @ w_u[CAT]), rel=1e-5)
        _set_output(weight, lm, i, -w_u[CAT])
        df = project(lm, f"mlp_post.{L}:{i}", k=5)
        assert df[(df["view"] == "raw") & (df["direction"] == "suppressed")]["token_id"].iat[0] == CAT


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_planted_input_rows_are_driven_by_cat(models, model_type):
    lm = models(model_type)
    L, i = 1, 5
    block = lm.anatomy.block(L)
    w_e = lm.model.get_input_embeddings().weight.detach()
    role, path = next(iter(lm.anatomy.family.mlp_in.items()))                   # "in" (gpt2) or "gate"
    with planted(lm.model.get_submodule(f"{block}.{path}")) as weight:
        if model_type == "gpt2":
            weight[:, i] = w_e[CAT]                                              # Conv1D [d, neurons]
        else:
            weight[i, :] = w_e[CAT]                                              # Linear [neurons, d]
        df = project(lm, f"mlp_post.{L}:{i}", k=3)
        assert df[(df["view"] == role) & (df["direction"] == "excites")]["token_id"].iat[0] == CAT
    d_head = lm.anatomy.d_head
    index = 1 * d_head + 3                                                       # head 1, dimension 3
    q_path = "attn.c_attn" if model_type == "gpt2" else "self_attn.k_proj"
    kind = "q" if model_type == "gpt2" else "k"
    with planted(lm.model.get_submodule(f"{block}.{q_path}")) as weight:
        if model_type == "gpt2":
            weight[:, index] = w_e[CAT]                                          # q is the first third
        else:
            weight[index, :] = w_e[CAT]
        df = project(lm, f"{kind}.{L}:{index}", k=3)
        assert df["token_id"].iat[0] == CAT and set(df["side"]) == {"input"}


def test_category_projection_finds_a_planted_neuron(llama):
    L, i = 2, 123
    words = ["cat", "dog", "horse", "Zanzibarian"]                                # the last splits in GPT-2 BPE
    ids = [llama.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in words]
    w_u = llama.unembedding_matrix()
    with planted(_down(llama, L)) as weight:
        weight[:, i] = 3 * torch.nn.functional.normalize(w_u[ids].sum(0), dim=0)
        with pytest.warns(UserWarning, match="Zanzibarian"):
            df = category_projection(llama, words, L, k=5)
    assert df["neuron"].iat[0] == f"mlp_post.{L}:{i}" and df["index"].iat[0] == i
    assert df.attrs["split_words"] == ["Zanzibarian"]
    assert [w["token_id"] for w in df.attrs["words"]] == ids


def test_bad_neurons_are_site_errors(llama):
    for bad in ("mlp_post.1:512", "mlp_post.1:-1", "k.1:64", "resid_post.1:3", "logits:2"):
        with pytest.raises(SiteError):
            project(llama, bad)
    with pytest.raises(SiteError):
        category_projection(llama, ["cat"], layer=99)


def test_project_cli(llama):
    from lamina.cli import app

    ok = CliRunner().invoke(app, ["project", "--model", "random:llama", "--neuron", "mlp_post.1:3", "-k", "4"])
    assert ok.exit_code == 0, ok.output
    assert "promoted" in ok.stdout and "suppressed" in ok.stdout and "gate" in ok.stdout
    as_json = CliRunner().invoke(app, ["project", "--model", "random:llama", "--neuron", "q.1:5", "-k", "2", "--json"])
    payload = json.loads(as_json.stdout)
    assert payload["neuron"] == "q.1:5" and len(payload["rows"]) == 4
    for bad in ("mlp_post.1:512", "attn_out.1:0"):
        run = CliRunner().invoke(app, ["project", "--model", "random:llama", "--neuron", bad, "--json"])
        assert run.exit_code == 2 and run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1


def test_embedding_and_unembedding_shapes(gpt2):
    assert gpt2.embedding_matrix().shape == gpt2.unembedding_matrix().shape == (50257, 768)
