"""The logit lens against values built independently from transformers' own outputs and scipy.

References come from `model(..., output_hidden_states=True)` and the model's own norm and lm_head modules;
statistics from scipy. The norm weights of the session's random models are redrawn (conftest), so a lens
that normalises twice, or skips the norm, fails here as it would on a trained model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats
from typer.testing import CliRunner

import lamina
from lamina.analyses.vocab.logit_lens import lens_logits, logit_lens
from lamina.errors import AnatomyCheckError

TEXTS = ["The cat sat on the mat because it was tired.", "Hello world."]  # unequal lengths: padding
TYPES = ("gpt2", "llama", "phi3", "gpt_neox", "gemma", "gemma2", "olmo2")  # gemma2: final logit soft-capping


def _hf(lm, batch):
    """The model's own forward pass: logits [b, t, vocab] and hidden_states, no lamina hooks."""
    with torch.inference_mode():
        return lm.model(**batch, output_hidden_states=True, use_cache=False)


def _lens(lm, batch) -> dict[int, torch.Tensor]:
    """Every block's lens logits [b, t, vocab]: `lens_logits` (what logit_lens applies) on each raw resid_post.L."""
    acts = lm.capture(batch, [f"resid_post.{L}" for L in range(lm.n_layers)])
    return {L: lens_logits(lm, acts[f"resid_post.{L}"]) for L in range(lm.n_layers)}


def _norm_then_unembed(lm, x):
    f = lm.anatomy.family
    with torch.inference_mode():
        return lm.model.get_submodule(f.unembed)(lm.model.get_submodule(f.final_norm)(x))


@pytest.mark.parametrize("model_type", TYPES)
def test_last_layer_lens_is_the_models_logits(models, model_type):
    lm = models(model_type)
    batch = lm.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()
    lens = _lens(lm, batch)
    want = _hf(lm, batch).logits[mask]
    assert float((lens[lm.n_layers - 1][mask] - want).abs().max()) <= 1e-5


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_lens_at_each_layer_is_norm_and_unembed_of_the_next_hidden_state(models, model_type):
    lm = models(model_type)
    batch = lm.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()
    hidden = _hf(lm, batch).hidden_states
    lens = _lens(lm, batch)
    for L in range(lm.n_layers - 1):  # hidden_states[L + 1] is resid_post.L below the last block
        want = _norm_then_unembed(lm, hidden[L + 1])[mask]
        assert float((lens[L][mask] - want).abs().max()) <= 1e-5, f"layer {L}"


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_normalising_hidden_states_last_again_is_wrong(models, model_type):
    """hidden_states[-1] is already after the final norm: a second norm does not give the logits."""
    lm = models(model_type)
    batch = lm.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()
    out = _hf(lm, batch)
    twice = _norm_then_unembed(lm, out.hidden_states[-1])[mask]
    assert float((twice - out.logits[mask]).abs().max()) > 1e-2


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_statistics_match_scipy(models, model_type):
    lm = models(model_type)
    result = logit_lens(lm, TEXTS, k=3)
    batch = lm.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()
    out = _hf(lm, batch)
    p_final = torch.softmax(out.logits[mask].double(), -1).numpy()            # [n, vocab]
    assert result.last_layer_max_abs_diff <= 1e-5
    for L in (0, lm.n_layers // 2, lm.n_layers - 1):
        last = L == lm.n_layers - 1
        logits = out.logits if last else _norm_then_unembed(lm, out.hidden_states[L + 1])
        p = torch.softmax(logits[mask].double(), -1).numpy()
        rows = result.table[result.table["layer"] == L].sort_values(["doc", "position"])
        np.testing.assert_allclose(rows["kl"], special.rel_entr(p_final, p).sum(-1), atol=1e-5)
        np.testing.assert_allclose(rows["entropy"], stats.entropy(p, axis=-1), rtol=1e-4)
        top = p_final.argmax(-1)
        rank = (p > p[np.arange(len(top)), top][:, None]).sum(-1) + 1
        np.testing.assert_array_equal(rows["rank_of_final_top"], rank)
        assert [t[0] for t in rows["top_tokens"]] == [lm.tokenizer.decode([i]) for i in p.argmax(-1)]
    last = result.per_layer.iloc[-1]
    assert last["kl"] <= 1e-7 and last["rank_of_final_top"] == 1 and last["top1_agreement"] == 1.0


def test_table_has_real_tokens_only_and_batches_agree(llama):
    one = logit_lens(llama, TEXTS, k=2, batch_size=1)
    both = logit_lens(llama, TEXTS, k=2, batch_size=8)
    n_tokens = [len(llama.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert len(both.table) == llama.n_layers * sum(n_tokens)
    assert list(both.table.groupby("doc").size()) == [llama.n_layers * n for n in n_tokens]
    assert list(both.table.columns[:8]) == ["layer", "doc", "position", "token", "kl", "entropy",
                                           "rank_of_final_top", "top_tokens"]
    np.testing.assert_allclose(one.table["kl"], both.table["kl"], atol=1e-5)
    assert (one.table["top_tokens"] == both.table["top_tokens"]).all()
    np.testing.assert_allclose(both.per_layer["kl"], both.table.groupby("layer")["kl"].mean(), rtol=1e-12)


def test_lens_logits_takes_any_shape(llama):
    x = torch.randn(3, llama.anatomy.d_model)
    assert lens_logits(llama, x).shape == (3, len(llama.tokenizer))


def test_plots_and_cli(llama, tmp_path):
    from lamina.cli import app
    from lamina.report.logit_lens_plot import plot_lens_heatmap, plot_lens_layers

    result = logit_lens(llama, TEXTS)
    assert plot_lens_layers(result, tmp_path / "a.png").stat().st_size > 1000
    assert plot_lens_heatmap(result, tmp_path / "b.png", doc=1).stat().st_size > 1000
    out = tmp_path / "cli"
    run = CliRunner().invoke(app, ["logit-lens", "--model", "random:llama", "--text", TEXTS[0], "--out", str(out)])
    assert run.exit_code == 0, run.output
    for name in ("logit_lens.csv", "logit_lens_layers.csv", "logit_lens_layers.png", "logit_lens_heatmap.png"):
        assert (out / name).stat().st_size > 0
    bad = CliRunner().invoke(app, ["logit-lens", "--model", "random:llama", "--text", " "])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_embedded_model_last_layer_lens_is_its_logits():
    lm = lamina.load("smollm2-135m")
    batch = lm.tokenize(TEXTS)
    mask = batch["attention_mask"].bool()
    out = _hf(lm, batch)
    lens = _lens(lm, batch)
    assert float((lens[lm.n_layers - 1][mask] - out.logits[mask]).abs().max()) <= 1e-5
    # The peer-tool mistake: the final norm applied to hidden_states[-1], which already went through it.
    assert float((_norm_then_unembed(lm, out.hidden_states[-1])[mask] - out.logits[mask]).abs().max()) > 1.0
    result = logit_lens(lm, TEXTS)
    assert result.per_layer["kl"].iloc[-1] <= 1e-7 and result.per_layer["kl"].iloc[0] > 1.0


@pytest.mark.parametrize("model_type", TYPES)
def test_logit_lens_checks_hold_on_every_family(models, model_type):
    """logit_lens builds the final distribution from the model's final-norm output (no full logits in memory);
    both of its checks (norm at every position, the model's own head on the prefix) pass on every family."""
    result = logit_lens(models(model_type), TEXTS, progress=False)
    assert result.last_layer_max_abs_diff <= 1e-4
    last = result.per_layer[result.per_layer.layer == result.info["n_layers"] - 1].iloc[0]
    assert last.kl == pytest.approx(0.0, abs=1e-5) and last.top1_agreement == 1.0


def test_head_check_catches_a_head_that_is_not_the_models(models, monkeypatch):
    """A soft-cap the model does not apply (lamina would apply it to the lens and the final distribution alike)
    differs from the logits the model returns: the head check refuses, so the lens never compares against a
    distribution the model does not produce."""
    lm = models("llama")
    monkeypatch.setattr(lm.model.config, "final_logit_softcapping", 0.5, raising=False)
    with pytest.raises(AnatomyCheckError, match="own logits"):
        logit_lens(lm, TEXTS, progress=False)
