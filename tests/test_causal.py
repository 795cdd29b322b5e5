"""Known-answer tests of edits (ablate, patch, steer): every expected value is computed by hand from the HF
modules and weights, or by a plain torch hook, never by the code under test."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_capture import _hooks
from typer.testing import CliRunner

import lamina
from lamina.analyses.causal.from_tune import causal_tuning, matched_random, top_neurons
from lamina.analyses.causal.interventions import Ablate, Steer, reference_stats
from lamina.analyses.causal.metrics import bootstrap_ratio, edit_metrics
from lamina.analyses.causal.patching import align_positions, patch_pair
from lamina.analyses.neurons.planted import plant_neuron
from lamina.data.corpus import Document
from lamina.edits import Edit
from lamina.errors import InputError, SiteError

TEXT = "The cat sat on the mat because it was tired."
OTHER = "A dog ran in the park since he felt happy."   # same token count as TEXT (checked below)


def _logits(lm, text):
    with torch.no_grad():
        return lm.model(**lm.tokenize(text)).logits


@pytest.fixture(scope="module")
def fresh_llama():
    lm = lamina.load("random:llama", seed=3)  # mutated by the planted-neuron test: its own copy
    return lm


# ---------------------------------------------------------------- known answers

def test_ablating_planted_neuron_removes_exactly_its_logit_push(fresh_llama):
    lm = fresh_llama
    L, neuron = lm.n_layers - 1, 11
    token = lm.tokenizer(" cat")["input_ids"][0]
    plant_neuron(lm, L, neuron, [token], silent=False)
    w_out = lm.model.lm_head.weight[token].detach()
    with torch.no_grad():  # its output vector pushes ' cat': the unembedding row of the token
        lm.model.get_submodule(f"model.layers.{L}.mlp.down_proj").weight[:, neuron] = 0.05 * w_out
    clean = lm.run(TEXT, sites=["mlp_post", "final_norm.input", "logits"])
    a = clean[f"mlp_post.{L}"][0, :, neuron]                              # [tokens]
    assert a.abs().max() > 1.0  # the planted neuron fires
    # by hand: the final residual loses a * column; then the model's own final norm and unembedding
    h = clean["final_norm.input"][0] - a[:, None] * (0.05 * w_out)
    with torch.no_grad():
        want = lm.model.lm_head(lm.model.model.norm(h))
    got = lm.run(TEXT, edits=[Edit(f"mlp_post.{L}", "zero", neurons=[neuron])])["logits"][0]
    push = want - clean["logits"][0]                                      # the logit change by hand
    assert float(push.abs().max()) > 1.0
    torch.testing.assert_close(got - clean["logits"][0], push, atol=1e-4 * float(push.abs().max()), rtol=0)
    change = (got - clean["logits"][0])[a.argmax()]
    assert int(change.argmin()) == token  # the known token loses most where the neuron fires most


def test_mean_ablating_a_constant_neuron_changes_nothing():
    lm = lamina.load("random:gpt_neox", seed=1)
    mlp = lm.model.gpt_neox.layers[1].mlp
    with torch.no_grad():
        mlp.dense_h_to_4h.weight[7] = 0.0
        mlp.dense_h_to_4h.bias[7] = 1.5   # mlp_post.1:7 = gelu(1.5) at every token
    docs = [Document("a", "One two three four five six seven. " * 3), Document("b", "Red green blue. " * 4)]
    ref = reference_stats(lm, "mlp_post.1", docs, context=16, max_tokens=None)
    assert float(ref.mean[7]) == pytest.approx(float(F.gelu(torch.tensor(1.5))), rel=1e-5)
    clean = _logits(lm, TEXT)
    for positions in (None, [0, 2]):
        mean = lm.run(TEXT, edits=[Ablate("mlp_post.1", neurons=[7], method="mean", positions=positions,
                                          reference=ref)])["logits"]
        torch.testing.assert_close(mean, clean, atol=1e-5, rtol=1e-5)
    zero = lm.run(TEXT, edits=[Ablate("mlp_post.1", neurons=[7], method="zero")])["logits"]
    assert float((zero - clean).abs().max()) > 1e-3  # the same neuron zeroed does change the output


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "phi3", "gpt_neox"])
def test_edit_and_capture_in_one_pass_equal_a_plain_hook(models, model_type):
    lm = models(model_type)
    L = 1
    hand = {"llama": ("model.layers.1.mlp.down_proj", "pre"), "phi3": ("model.layers.1.mlp.down_proj", "pre"),
            "gpt2": ("transformer.h.1.mlp.act", "out"), "gpt_neox": ("gpt_neox.layers.1.mlp.act", "out")}[model_type]

    def zero(x):
        x = x.clone()
        x[:, 1:3, [3, 7]] = 0.0
        return x

    module = lm.model.get_submodule(hand[0])
    h = (module.register_forward_pre_hook(lambda m, args: (zero(args[0]),)) if hand[1] == "pre"
         else module.register_forward_hook(lambda m, args, out: zero(out)))
    try:
        with torch.no_grad():
            want = lm.model(**lm.tokenize(TEXT), output_hidden_states=True)
    finally:
        h.remove()
    calls = []
    block0 = lm.model.get_submodule(lm.anatomy.block(0))
    counter = block0.register_forward_hook(lambda *a: calls.append(1))
    try:
        got = lm.run(TEXT, edits=[Edit(f"mlp_post.{L}", "zero", neurons=[3, 7], positions=[1, 2])],
                     sites=[f"mlp_post.{L}", f"resid_post.{L + 1}", "logits"])
    finally:
        counter.remove()
    assert len(calls) == 1  # one forward pass for the edit and the three reads
    torch.testing.assert_close(got[f"resid_post.{L + 1}"], want.hidden_states[L + 2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["logits"], want.logits, atol=1e-5, rtol=1e-5)
    assert float(got[f"mlp_post.{L}"][0, 1:3][:, [3, 7]].abs().max()) == 0.0
    assert float(got[f"mlp_post.{L}"][0, 0, [3, 7]].abs().min()) > 0.0


@pytest.mark.parametrize("model_type", ["llama", "phi3", "gpt_neox", "gpt2"])
def test_head_edit_writes_the_projection_columns_of_that_head(models, model_type):
    """q head 2 of a separate, fused [q|k|v], phi3 or per-head interleaved projection: columns by hand."""
    lm = models(model_type)
    a = lm.anatomy
    d, h = a.d_head, 2
    cols = {"separate": range(h * d, (h + 1) * d), "phi3": range(h * d, (h + 1) * d),
            "gpt2": range(h * d, (h + 1) * d), "neox": range(h * 3 * d, h * 3 * d + d)}[a.family.qkv_layout]
    path = lm.anatomy.locate(lm.sites(["q.1"])[0]).module
    module = lm.model.get_submodule(path)

    def hook(m, args, out):
        out = out.clone()
        out[..., list(cols)] = 0.0
        return out

    handle = module.register_forward_hook(hook)
    try:
        want = _logits(lm, TEXT)
    finally:
        handle.remove()
    got = lm.run(TEXT, edits=[Edit("q.1", "zero", heads=[h])], sites=["q.1", "logits"])
    torch.testing.assert_close(got["logits"], want, atol=1e-5, rtol=1e-5)
    assert float(got["q.1"][0, :, h].abs().max()) == 0.0


def test_patching_every_position_of_a_layer_reproduces_the_corrupt_run(llama):
    n = len(llama.tokenize(TEXT)["input_ids"][0])
    assert n == len(llama.tokenize(OTHER)["input_ids"][0])
    corrupt = llama.capture(OTHER, ["resid_pre.2"])["resid_pre.2"]
    got = llama.run(TEXT, edits=[Edit("resid_pre.2", "set", value=corrupt)])["logits"]
    torch.testing.assert_close(got, _logits(llama, OTHER), atol=1e-5, rtol=1e-5)


def test_batched_patch_sweep_equals_one_patch_per_pass(llama):
    one = patch_pair(llama, TEXT, OTHER, "resid_pre", [0], "kl", batch_size=1)
    many = patch_pair(llama, TEXT, OTHER, "resid_pre", [0], "kl", batch_size=64)
    np.testing.assert_allclose(many.raw, one.raw, rtol=1e-4, atol=1e-7)
    # by hand: the final position of layer 0 patched alone is a plain-hook overwrite of that one vector
    corrupt = llama.capture(OTHER, ["resid_pre.0"])["resid_pre.0"]
    n = corrupt.shape[1]
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, n - 1] = True
    patched = llama.run(TEXT, edits=[Edit("resid_pre.0", "set", positions=mask, value=corrupt)])["logits"]
    lp = torch.log_softmax(patched[0, -1], -1)
    lr = torch.log_softmax(_logits(llama, OTHER)[0, -1], -1)
    assert many.raw[0, n - 1] == pytest.approx(float((lr.exp() * (lr - lp)).sum()), rel=1e-4, abs=1e-7)


def test_align_positions_maps_prefix_and_suffix():
    assert align_positions([1, 2, 5, 6], [1, 2, 9, 5, 6], "edit") == [0, 1, 3, 4]
    assert align_positions([1, 2, 9, 5, 6], [1, 2, 5, 6], "edit") == [0, 1, None, 2, 3]
    with pytest.raises(InputError, match="pair 3"):
        align_positions([1, 2], [1, 2, 3], "exact", "pair 3")


def test_steer_adds_the_vector_to_the_residual(llama):
    v = torch.randn(llama.anatomy.d_model, generator=torch.Generator().manual_seed(0))
    clean = llama.capture(TEXT, ["resid_post.1", "resid_post.2"])
    got = llama.run(TEXT, edits=[Steer("resid_post.1", v, alpha=2.0, positions=[3])],
                    sites=["resid_post.1", "resid_post.2"])
    torch.testing.assert_close(got["resid_post.1"][0, 3], clean["resid_post.1"][0, 3] + 2 * v)
    torch.testing.assert_close(got["resid_post.1"][0, :3], clean["resid_post.1"][0, :3])
    torch.testing.assert_close(got["resid_post.2"][0, :3], clean["resid_post.2"][0, :3], atol=1e-6, rtol=1e-6)  # causal


# ---------------------------------------------------------------- metrics

def test_baseline_loss_equals_hf_loss_and_noop_edit_has_zero_kl(llama):
    docs = [Document("a", TEXT), Document("b", OTHER + " " + TEXT)]
    r = edit_metrics(llama, [Edit("mlp_post.0", "scale", value=1.0)], docs, context=64, max_tokens=None)
    want = []
    for d in docs:
        batch = llama.tokenize(d.text)
        with torch.no_grad():
            out = llama.model(**batch, labels=batch["input_ids"])
        want.append((float(out.loss), batch["input_ids"].shape[1] - 1))
    mean = sum(loss * n for loss, n in want) / sum(n for _, n in want)
    s = r.summary
    assert s["n_tokens"] == sum(n for _, n in want)
    assert s["baseline"]["loss"] == pytest.approx(mean, rel=1e-5)
    assert s["baseline"]["perplexity"] == pytest.approx(np.exp(mean), rel=1e-5)
    assert s["ablated"]["loss"] == pytest.approx(mean, rel=1e-5)
    assert abs(s["kl"]["value"]) < 1e-6
    skip = edit_metrics(llama, [Edit("mlp_post.0", "scale", value=1.0)], docs, context=64, max_tokens=None,
                        skip_first=True)
    assert skip.summary["n_tokens"] == s["n_tokens"] - 2  # one prediction from a single token per window


def test_bootstrap_ratio_matches_scipy_percentile_interval():
    from scipy.stats import bootstrap

    x = np.random.default_rng(0).normal(1.0, 2.0, 40)
    value, lo, hi = bootstrap_ratio(x, np.ones(40), n_boot=4000, seed=1)
    ref = bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=2).confidence_interval
    assert value == pytest.approx(x.mean())
    assert lo == pytest.approx(ref.low, abs=0.1) and hi == pytest.approx(ref.high, abs=0.1)


# ---------------------------------------------------------------- tuning, causally

def test_top_neurons_and_variance_matched_draws():
    table = pd.DataFrame({"layer": [0] * 6, "neuron": range(6), "q": [0.5, 0.01, 0.2, 0.01, 0.9, 0.04],
                          "significant": [False, True, False, True, False, True], "t": [1, 5, -9, 7, 0, 2]})
    top, n_sig = top_neurons(table, 0, 3)
    assert top == [3, 1, 5] and n_sig == 3  # q ties broken by |t|
    variance = np.arange(100.0)
    drawn = matched_random(variance, [5, 55, 95], np.random.default_rng(0))
    assert len(drawn) == 3 and not {5, 55, 95} & set(drawn)
    assert sorted(v // 10 for v in drawn) == [0, 5, 9]  # one per decile of the tuned neurons


def _pair_kl_by_hand(lm, pairs, layer: int, zeroed: list[int]) -> np.ndarray:
    """KL(negated || affirmed) at the final token per pair, from HF's own logits with mlp_post.`layer`'s `zeroed`
    neurons set to 0 by a hook of our own on the input of the MLP's down projection."""
    down = lm.model.get_submodule(f"{lm.anatomy.block(layer)}.{lm.anatomy.family.mlp_down}")

    def zero(module, args):
        x = args[0].clone()
        x[..., zeroed] = 0
        return (x,)

    handle = down.register_forward_pre_hook(zero)
    try:
        with torch.no_grad():
            lp = [[torch.log_softmax(lm.model(**lm.tokenize([t])).logits[0, -1].double(), -1) for t in p]
                  for p in pairs]
    finally:
        handle.remove()
    return np.array([float((neg.exp() * (neg - aff)).sum()) for aff, neg in lp])


def test_causal_tuning_matches_ablations_by_hand(llama):
    """Every draw's effect is the change in KL from HF's forward pass with those neurons zeroed by hand; the band
    is the random draws' 2.5-97.5% quantiles and the p the rank of |top| among them,
    (1 + #{|random| >= |top|}) / (R + 1)."""
    table = pd.DataFrame({"layer": [1] * 512, "neuron": range(512), "q": np.linspace(0, 1, 512),
                          "significant": [True] * 5 + [False] * 507})
    pairs = [("The door was open.", "The door was not open."), ("It is cold.", "It is not cold.")]
    r = causal_tuning(llama, table, pairs, "mlp_post", [1], k=5, repeats=4, docs=None, progress=False)
    row = r.per_layer.iloc[0]
    assert row.top_neurons == "0 1 2 3 4" and row.n_top_significant == 5
    assert list(r.draws.draw) == ["top", "random0", "random1", "random2", "random3"]
    clean = _pair_kl_by_hand(llama, pairs, 1, [])
    effects = np.array([(_pair_kl_by_hand(llama, pairs, 1, [int(i) for i in d.neurons.split()]) - clean).mean()
                        for d in r.draws.itertuples()])
    np.testing.assert_allclose(r.draws.effect, effects, rtol=1e-3, atol=1e-6)
    top, rand = r.draws.effect.iat[0], r.draws.effect.to_numpy()[1:]
    assert row.top_effect == pytest.approx(top, rel=1e-9)
    assert (row.random_low, row.random_high) == pytest.approx(tuple(np.quantile(rand, [0.025, 0.975])), rel=1e-9)
    assert row.p_value == (1 + np.sum(np.abs(rand) >= abs(top))) / 5


# ---------------------------------------------------------------- hooks and bad input

def test_hooks_removed_after_a_failing_edit_and_inside_edit_block(llama):
    before = _hooks(llama.model)
    with pytest.raises(InputError, match="width"):
        llama.run(TEXT, edits=[Edit("resid_post.1", "add", value=torch.ones(7))])
    assert _hooks(llama.model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with llama.edit(Edit("mlp_post.1", "zero")):
            assert _hooks(llama.model) != before
            raise RuntimeError("boom")
    assert _hooks(llama.model) == before


@pytest.mark.parametrize("edit, error", [
    (Edit("mlp_postt.1", "zero"), SiteError),
    (Edit("mlp_post.1", "zero", neurons=[512]), InputError),
    (Edit("q.1", "zero", heads=[4]), InputError),
    (Edit("k.1", "zero", heads=[2]), InputError),        # 2 kv heads
    (Edit("mlp_post.1", "zero", positions=[40]), InputError),
    (Edit("final_norm.scale", "zero"), SiteError),
    (Edit("mlp_post", "zero"), SiteError),               # every layer: an edit needs one site
])
def test_bad_edits_raise_one_clear_error(llama, edit, error):
    with pytest.raises(error):
        llama.run(TEXT, edits=[edit])


def test_empty_reference_is_refused(llama):
    docs = [Document("a", "Hi")]
    with pytest.raises(InputError, match="no counted token"):
        reference_stats(llama, "mlp_post.1", docs, context=4, skip_first=True)


runner = CliRunner()


def _cli(*args):
    from lamina.cli import app

    return runner.invoke(app, list(args))


@pytest.mark.parametrize("args, needle", [
    (["ablate", "--site", "mlp_postt.1"], "unknown site"),
    (["ablate", "--site", "mlp_post.1", "--neurons", "900"], "out of range"),
    (["ablate", "--site", "q.1", "--heads", "9"], "out of range"),
    (["ablate", "--site", "mlp_post.1", "--positions", "300", "--max-tokens", "200"], "beyond"),
    (["patch", "--pairs", "negation", "--max-pairs", "2"], "pair 1"),
    (["steer", "--site", "resid_post.1", "--vector", "VEC"], "width"),
])
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    np.save(tmp_path / "v.npy", np.ones(5))
    args = [str(tmp_path / "v.npy") if a == "VEC" else a for a in args]
    out = tmp_path / "out"
    result = _cli(*args, "--model", "random:llama", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_cli_ablate_json_fields(tmp_path):
    result = _cli("ablate", "--model", "random:llama", "--site", "mlp_post.1", "--neurons", "1-3",
                  "--max-tokens", "256",
                  "--json", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    j = json.loads(result.stdout)
    for key in ("model", "site", "neurons", "positions", "method", "n_tokens", "baseline", "ablated",
                "delta_loss", "kl"):
        assert key in j
    assert j["neurons"] == [1, 2, 3] and j["n_tokens"] > 200
    assert j["delta_loss"]["value"] == pytest.approx(j["ablated"]["loss"] - j["baseline"]["loss"], abs=1e-9)
    assert (tmp_path / "per_doc.csv").is_file()


def test_reference_from_store_equals_a_fresh_pass(llama, tmp_path):
    from lamina.analyses.causal.interventions import reference_from_store
    from lamina.extract import extract

    docs = [Document("a", TEXT + " " + OTHER), Document("b", OTHER)]
    extract(llama, docs, ["mlp_post.1"], tmp_path / "store", context=8, dtype="float32", progress=False)
    stored = reference_from_store(tmp_path / "store", "mlp_post.1")
    fresh = reference_stats(llama, "mlp_post.1", docs, context=8, max_tokens=None)
    assert stored.n_tokens == fresh.n_tokens
    torch.testing.assert_close(stored.mean, fresh.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stored.position_mean(), fresh.position_mean(), atol=1e-5, rtol=1e-5)
