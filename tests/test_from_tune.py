"""A tune run tested causally (`ablate --from-tune`, `steer --from-tune --top`), and the one tune-folder reader.

Expected values come from HF's own forward pass (log-softmax of `model(**inputs).logits`) and from a plain
torch hook that zeroes the neurons by hand, never from the code under test; the tune runs are made by
`lamina tune` itself, as a user would run it.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import lamina
from lamina.analyses.causal.from_tune import ablate_edits, causal_from_tune, steer_edits, top_neurons
from lamina.analyses.causal.tune_metrics import LabelledLoss, TargetLogprob, target_ids
from lamina.analyses.neurons.planted import plant_neuron
from lamina.analyses.tuning.run_folder import read_tune_run, read_tune_samples
from lamina.cli import app
from lamina.errors import InputError

runner = CliRunner()
TINY = ["--model", "random:llama", "--layers", "1", "--permutations", "0", "--reference-permutations", "0",
        "--no-probes", "--cv", "3"]


def _tune(folder, *args):
    result = runner.invoke(app, ["tune", *args, *TINY, "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tune runs made by `lamina tune` on random:llama: category, a labels table, nouns-verbs."""
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a.txt", root / "b.txt"
    a.write_text("one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n")
    b.write_text("table\nchair\nriver\ngarden\nwindow\npaper\nmusic\nwater\n")
    rng = np.random.default_rng(0)
    texts = [f"Speaker {i % 12} said the {w} was here." for i, w in enumerate(["cat", "dog", "tree", "car"] * 12)]
    table = root / "t.csv"
    pd.DataFrame({"text": texts, "label": rng.permutation(np.arange(48) < 24)}).to_csv(table, index=False)
    return {"category": _tune(root / "category", "-c", "category", "--words-a", str(a), "--words-b", str(b)),
            "labels": _tune(root / "labels", "-c", "labels", "--table", str(table), "--label-column", "label"),
            "nouns-verbs": _tune(root / "nouns-verbs", "-c", "nouns-verbs", "--max-tokens", "600")}


# ---------------------------------------------------------------- the one reader of a tune folder

def test_reader_returns_what_tune_wrote(runs):
    neurons, settings = read_tune_run(runs["category"])
    assert settings["contrast"] == "category" and settings["model"] == "random:llama"
    assert len(neurons) == 512 and set(neurons.layer) == {1}
    samples = read_tune_samples(runs["category"])
    assert len(samples.rows) == 16 and samples.texts[0] == "The next word is one."
    assert samples.rows.positions.iat[0] == (samples.rows.position.iat[0],)   # tuples of ints


def test_reader_refuses_a_folder_that_is_not_a_tune_run(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        read_tune_run(tmp_path / "missing")
    with pytest.raises(InputError, match="holds no neurons.parquet"):
        read_tune_run(tmp_path)
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "neurons.csv", index=False)
    with pytest.raises(InputError, match="no column layer"):
        read_tune_run(tmp_path)
    with pytest.raises(InputError, match="samples.csv"):
        read_tune_samples(tmp_path)


# ---------------------------------------------------------------- metrics against HF's own outputs

def _hf_logp(lm, text):
    with torch.no_grad():
        return torch.log_softmax(lm.model(**lm.tokenize(text)).logits[0].float(), -1)


def test_labelled_loss_equals_hf_next_token_loss(llama, runs):
    samples = read_tune_samples(runs["category"])
    metric = LabelledLoss(samples.texts, samples.rows, "word_type").prepare(llama)
    got = metric.score(llama)
    for i in (0, 5, 15):
        row = metric.items.iloc[i]
        ids = llama.tokenizer(samples.texts[int(row.text)])["input_ids"]
        p = max(row.positions)
        assert got[i] == pytest.approx(-float(_hf_logp(llama, samples.texts[int(row.text)])[p, ids[p + 1]]), abs=1e-4)


def test_target_logprob_is_the_log_of_the_targets_total_probability(llama):
    ids = target_ids(llama.tokenizer, " one, two")
    assert ids == [llama.tokenizer(" one", add_special_tokens=False)["input_ids"][0],
                   llama.tokenizer(" two", add_special_tokens=False)["input_ids"][0]]
    prompts = ["She counted to", "The answer is"]
    got = TargetLogprob(prompts, ids, [" one", " two"]).score(llama)
    for i, p in enumerate(prompts):
        want = torch.logsumexp(_hf_logp(llama, p)[-1, ids], -1)
        assert got[i] == pytest.approx(float(want), abs=1e-4)


def test_label_probe_is_a_cross_fitted_sklearn_probe_on_hf_hidden_states(llama, runs):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lamina.analyses.causal.tune_metrics import LabelProbe

    samples = read_tune_samples(runs["category"])
    got = LabelProbe(samples.texts, samples.rows, "word_type", folds=4).score(llama)
    x = []
    for row in samples.rows.itertuples():  # HF's own last hidden state (after the final norm) at the read token
        with torch.no_grad():
            out = llama.model(**llama.tokenize(samples.texts[int(row.text)]), output_hidden_states=True)
        x.append(out.hidden_states[-1][0, max(row.positions)].float().numpy())
    x, y = np.array(x), samples.rows.label.astype(str).eq("True").to_numpy()
    groups = pd.factorize(samples.rows.word_type)[0]
    want = np.empty(len(y))
    for train, test in GroupKFold(4).split(x, y, groups):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
        want[test] = probe.decision_function(x[test])
    np.testing.assert_allclose(got, np.where(y, want, -want), atol=1e-3)


def test_a_split_target_is_refused_naming_its_pieces(llama):
    pieces = [llama.tokenizer.decode([t]) for t in llama.tokenizer(" toothbrushes", add_special_tokens=False)["input_ids"]]
    assert len(pieces) > 1
    with pytest.raises(InputError, match=" \\+ ".join(repr(p) for p in pieces).replace("'", "'")):
        target_ids(llama.tokenizer, " one, toothbrushes")


# ---------------------------------------------------------------- the top-K vs random test

def test_top_effect_equals_a_hand_made_zeroing_hook(llama, runs):
    neurons, _ = read_tune_run(runs["category"])
    samples = read_tune_samples(runs["category"])
    metric = LabelledLoss(samples.texts, samples.rows, "word_type")
    r = causal_from_tune(llama, neurons, metric, ablate_edits("zero"), layers=[1], k=5, repeats=3, progress=False)
    top, _ = top_neurons(neurons, 1, 5)
    down = llama.model.get_submodule("model.layers.1.mlp.down_proj")

    def zero(module, args):
        x = args[0].clone()
        x[..., top] = 0
        return (x,)

    deltas = []
    for row in metric.items.itertuples():
        text = samples.texts[int(row.text)]
        ids, p = llama.tokenizer(text)["input_ids"], max(row.positions)
        clean = -float(_hf_logp(llama, text)[p, ids[p + 1]])
        handle = down.register_forward_pre_hook(zero)
        try:
            edited = -float(_hf_logp(llama, text)[p, ids[p + 1]])
        finally:
            handle.remove()
        deltas.append(edited - clean)
    row = r.per_layer.iloc[0]
    assert row.top_effect == pytest.approx(np.mean(deltas), abs=1e-5)
    assert row.top_neurons == " ".join(map(str, top))
    rand = r.draws[r.draws.draw != "top"].effect.to_numpy()
    assert row.p_value == pytest.approx((1 + np.sum(np.abs(rand) >= abs(row.top_effect))) / 4)
    assert row.used == (not rand.min() <= row.top_effect <= rand.max())
    assert row.top_low <= row.top_effect <= row.top_high


def test_a_planted_neuron_is_used_and_random_ones_are_not(runs):
    lm = lamina.load("random:llama", seed=5)  # mutated below: its own copy
    samples = read_tune_samples(runs["category"])
    tokens = sorted(set(samples.rows.token_id[samples.rows.label.astype(str) == "True"].astype(int)))
    plant_neuron(lm, 1, 7, tokens, silent=False)
    with torch.no_grad():   # its output pushes the carrier's next token hard: ablating it must change the loss
        period = lm.tokenizer(".", add_special_tokens=False)["input_ids"][0]
        lm.model.get_submodule("model.layers.1.mlp.down_proj").weight[:, 7] = 0.5 * lm.model.lm_head.weight[period]
    table = pd.DataFrame({"layer": 1, "neuron": range(512), "q": [0.0] + [1.0] * 511,
                          "significant": [True] + [False] * 511}).assign(neuron=lambda d: (d.neuron + 7) % 512)
    metric = LabelledLoss(samples.texts, samples.rows, "word_type")
    r = causal_from_tune(lm, table, metric, layers=[1], k=1, repeats=9, progress=False)
    row = r.per_layer.iloc[0]
    assert row.top_neurons == "7" and row.used and row.p_value == pytest.approx(0.1)
    assert abs(row.top_effect) > 10 * max(abs(row.random_min), abs(row.random_max))
    assert r.verdicts() == []


def test_steering_edits_are_the_tuned_difference_at_the_sites_typical_norm():
    table = pd.DataFrame({"layer": 0, "neuron": range(6), "diff": [0.0, 3.0, 0.0, -4.0, 1.0, 2.0]})
    (edit,) = steer_edits(2.0)("mlp_post.0", [1, 3], table, scale=10.0)
    v = np.asarray(edit.vector) * edit.alpha
    np.testing.assert_allclose(v, [0, 2.0 * 10 * 3 / 5, 0, -2.0 * 10 * 4 / 5, 0, 0], atol=1e-6)


# ---------------------------------------------------------------- the verbs, as a user runs them

@pytest.mark.parametrize("contrast", ["category", "labels", "nouns-verbs"])
def test_ablate_from_tune_on_every_contrast(runs, contrast, tmp_path):
    out = tmp_path / "causal"
    result = runner.invoke(app, ["ablate", "--from-tune", str(runs[contrast]), "--model", "random:llama", "--top", "3",
                                 "--random", "3", "--loss-tokens", "0", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    j = json.loads(result.stdout[result.stdout.index("{"):])
    s, (row,) = j["settings"], j["per_layer"]
    assert s["tune_run"]["contrast"] == contrast and row["layer"] == 1 and row["n_top"] == 3
    assert s["metric_name"] == ("kl" if contrast == "labels" else "loss")  # a table is read at its final token
    n_samples = len(read_tune_samples(runs[contrast]).rows)
    assert s["n_items"] <= n_samples and s["n_units"] <= s["n_items"]
    assert len(j["verdicts"]) == (0 if row["used"] else 1)
    assert {"causal_laminar.csv", "draws.csv", "result.json", "causal_laminar.png"} <= {p.name for p in out.iterdir()}


def test_ablate_from_tune_with_the_label_probe(runs):
    result = runner.invoke(app, ["ablate", "--from-tune", str(runs["category"]), "--model", "random:llama", "--top", "3",
                                 "--random", "3", "--loss-tokens", "0", "--metric", "probe", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout[result.stdout.index("{"):])["settings"]
    assert s["metric_name"] == "probe" and s["n_items"] == 16 and s["unit"] == "word_type"


def test_ablate_and_steer_from_tune_on_prompts_with_a_target(runs, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("She counted to\nThe answer is\nHe bought\n")
    common = ["--from-tune", str(runs["category"]), "--model", "random:llama", "--top", "3", "--random", "3",
              "--prompts", str(prompts), "--target", " one, two", "--json"]
    ablate = runner.invoke(app, ["ablate", *common, "--loss-tokens", "0"])
    steer = runner.invoke(app, ["steer", *common, "--layer", "1", "--alpha", "4", "--max-tokens", "0"])
    for result, edit in ((ablate, "zero-ablating"), (steer, "steering (alpha 4) along")):
        assert result.exit_code == 0, result.output
        s = json.loads(result.stdout[result.stdout.index("{"):])["settings"]
        assert s["metric_name"] == "target" and s["n_items"] == 3 and s["unit"] == "prompt" and s["edit"] == edit


@pytest.mark.parametrize("args, needle", [
    (["--prompts", "P", "--target", " toothbrushes"], "is 3 tokens"),
    (["--prompts", "P"], "needs --prompts FILE and --target"),
    (["--metric", "pair-kl"], "measures the negation pairs"),
    (["--metric", "nope"], "unknown --metric"),
])
def test_from_tune_bad_input_is_one_line_and_exit_2(runs, tmp_path, args, needle):
    (tmp_path / "p.txt").write_text("She counted to\n")
    args = [str(tmp_path / "p.txt") if a == "P" else a for a in args]
    out = tmp_path / "out"
    result = runner.invoke(app, ["ablate", "--from-tune", str(runs["category"]), "--model", "random:llama",
                                 "--loss-tokens", "0", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output and not out.exists()


# ---------------------------------------------------------------- specificity beside a category fraction

def _run(groups, significant, t):
    from types import SimpleNamespace

    n = len(significant)
    neurons = pd.DataFrame({"name": [f"mlp_post.{i // 10}:{i % 10}" for i in range(n)], "layer": np.arange(n) // 10,
                            "neuron": np.arange(n) % 10, "t": t, "significant": significant})
    return SimpleNamespace(neurons=neurons, settings={"groups": list(groups), "group_sizes": {}, "contrast": "category"})


def test_specificity_counts_the_overlap_of_two_categories_against_the_same_controls():
    from scipy.stats import hypergeom

    from lamina.analyses.tuning.compare import category_specificity

    rng = np.random.default_rng(1)
    sig_a = np.zeros(20, bool)
    sig_a[[0, 1, 2, 3, 10, 11]] = True
    sig_c = np.zeros(20, bool)
    sig_c[[2, 3, 4, 12]] = True
    sp = category_specificity(_run(("numbers", "controls"), sig_a, rng.normal(size=20)),
                              _run(("colours", "controls"), sig_c, rng.normal(size=20)))
    assert (sp["first"], sp["second"], sp["controls"]) == ("numbers vs controls", "colours vs controls", "controls")
    layer0, layer1 = sp["layers"]
    assert (layer0["fraction_a"], layer0["fraction_c"], layer0["overlap"]) == (0.4, 0.3, 2)
    assert (layer1["fraction_a"], layer1["fraction_c"], layer1["overlap"]) == (0.2, 0.1, 0)
    assert layer0["expected_overlap"] == pytest.approx(4 * 3 / 10)
    assert layer0["p_overlap"] == pytest.approx(hypergeom.sf(1, 10, 4, 3))
    assert sp["overall"]["overlap"] == 2 and sp["overall"]["jaccard"] == pytest.approx(2 / 8)


def test_tune_words_c_puts_the_overlap_in_the_report(tmp_path):
    words = {"a": "one two three four five six", "b": "table chair river garden window paper",
             "c": "red blue green yellow purple orange"}
    for k, v in words.items():
        (tmp_path / f"{k}.txt").write_text("\n".join(v.split()) + "\n")
    out = _tune(tmp_path / "run", "-c", "category", "--words-a", str(tmp_path / "a.txt"), "--words-b",
                str(tmp_path / "b.txt"), "--words-c", str(tmp_path / "c.txt"))
    sp = json.loads((out / "tuning.json").read_text())["settings"]["specificity"]
    laminar = pd.read_csv(out / "laminar.csv")
    assert sp["second"] == "c vs b" and sp["group_sizes"] == {"c": 6, "b": 6}
    assert [r["fraction_a"] for r in sp["layers"]] == laminar.fraction_significant.tolist()
    assert "Specificity: a second category against the same controls" in (out / "tuning.html").read_text()
    assert pd.read_csv(out / "specificity.csv").layer.tolist() == [1]
    bad = runner.invoke(app, ["tune", "-c", "nouns-verbs", "--words-c", str(tmp_path / "c.txt"), *TINY])
    assert bad.exit_code == 2 and "--words-c is a second category" in bad.output
