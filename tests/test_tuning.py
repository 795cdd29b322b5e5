"""Neuron tuning: contrast builders on hand-made inputs, the planted-neuron known answer, bad input.

The planted neuron: random:llama (seed 0) with mlp_post.1:7's gate and up rows set to the sum of the
category-A tokens' embedding rows (and its output silenced, so no later layer changes). The word lists are
the built-in dental and household words that are one token with a leading space: every sample is then
read at the same position of the same carrier sentence with a distinct token, so for every neuron but
the planted one the two groups are exchangeable and the label-permutation null is exact.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import lamina
from lamina.analyses.neurons.planted import plant_neuron
from lamina.analyses.tuning import contrasts as C
from lamina.analyses.tuning import run as T
from lamina.analyses.tuning.context_lessons import context_effect, length_groups
from lamina.analyses.tuning.layer import layer_binary
from lamina.cli import app
from lamina.data.corpus import Document
from lamina.errors import InputError
from lamina.models.tokenizers import gpt2_tokenizer
from lamina.sites import parse_layers
from lamina.stats import TooFewSamplesError, correct_pvalues, label_draws, permutation_null

runner = CliRunner()


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


def _single_token_words(tok, name: str) -> list[str]:
    words = C.read_lines(C.builtin_file(f"{name}_words.txt"), "words")
    return [w for w in words if len(tok(" " + w)["input_ids"]) == 1]


def _synthetic(y, paired=False, token_ids=None) -> C.SampleSet:
    """A SampleSet over fake texts, for testing the statistics plumbing without a model."""
    y = np.asarray(y, dtype=bool)
    n = len(y)
    rows = pd.DataFrame({"text": np.arange(n), "positions": [(0,)] * n, "position": 0,
                         "token_id": token_ids if token_ids is not None else np.arange(n), "token": "x",
                         "word": "", "n_subtokens": 1, "label": y, "group": np.where(y, "a", "b"),
                         "pair": np.r_[np.arange(n // 2), np.arange(n // 2)] if paired else -1,
                         "char_len": 3, "log_freq": 1.0, "word_type": np.arange(n).astype(str),
                         "paragraph": np.arange(n), "doc": np.arange(n)})
    return C.SampleSet("test", ["x"] * n, rows, "binary", ("a", "b"), "test", "synthetic", paired=paired)


# --------------------------------------------------------------------------- the known answer
def test_planted_neuron_found_by_lamina_tune(tmp_path, tok):
    torch.manual_seed(0)
    lm = lamina.load("random:llama", seed=0, check=False)
    words_a, words_b = tmp_path / "a.txt", tmp_path / "b.txt"
    words_a.write_text("\n".join(_single_token_words(tok, "dental")))
    words_b.write_text("\n".join(_single_token_words(tok, "household")))
    samples = C.category(lm.tokenizer, words_a=words_a, words_b=words_b)
    assert (samples.rows["n_subtokens"] == 1).all() and samples.rows["position"].nunique() == 1
    plant_neuron(lm, layer=1, neuron=7, token_ids=samples.rows.loc[samples.y, "token_id"])
    lm.model.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")

    out = tmp_path / "out"
    result = runner.invoke(app, ["tune", "--model", str(tmp_path / "model"), "--contrast", "category",
                                 "--words-a", str(words_a), "--words-b", str(words_b), "--out", str(out),
                                 "--no-probes", "--permutations", "200", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert "cluster-robust" in report["settings"]["test"] and report["settings"]["family"] == "layer"
    assert report["settings"]["unit"] == "word_type x paragraph"
    assert [r["layer"] for r in report["layers"]] == list(range(4))
    assert all({"layer", "n_neurons", "n_significant"} <= set(r) for r in report["layers"])
    assert "Benjamini-Hochberg" in report["settings"]["correction"]

    neurons = pd.read_csv(out / "neurons.csv")
    planted = neurons[(neurons["layer"] == 1) & (neurons["neuron"] == 7)].iloc[0]
    assert planted["q"] < 0.01 and planted["t"] > 0
    assert (neurons["family"] == "each layer").all()
    laminar = pd.read_csv(out / "laminar.csv")
    others = laminar["n_significant"].to_numpy() - (laminar["layer"] == 1).to_numpy() * int(planted["significant"])
    # elsewhere: no more than the permutation null allows, layer by layer and over the model
    assert (others <= np.ceil(laminar["null_high"] * laminar["n_neurons"])).all(), laminar
    assert others.sum() <= report["settings"]["null_total"]["high"]
    assert (out / "tuning.html").exists() and (out / "tuning.png").exists()
    assert "Family:" in (out / "tuning.html").read_text()


def test_tune_api_probes_and_heatmap(llama):
    samples = C.category(llama.tokenizer, max_per_group=20)
    r = T.tune(llama, samples, site="mlp_post", layers="2-3", permutations=10, ks=(1, 2), rank_by=("mean_diff", "l1"),
               progress=False, n_examples=2, reference_permutations=2)
    assert (r.laminar["probe_best_auc_null_max"].between(0, 1)).all()
    assert (r.laminar["best_cv_balanced_accuracy_null_max"].between(0, 1)).all()
    assert sorted(r.probes["layer"].unique()) == [2, 3] and set(r.probes["k"]) == {1, 2}
    assert set(r.probes["rank_by"]) == {"mean_diff", "l1"}
    assert r.null_counts.shape == (10, 2) and len(r.neurons) == 2 * 512
    assert r.examples and all(len(t["tokens"]) == len(t["values"]) for e in r.examples for t in e["texts"])
    assert any(any(t["read"]) for t in r.examples[0]["texts"])


def test_qkv_site_flattens_heads(llama):
    samples = C.category(llama.tokenizer, max_per_group=12)
    r = T.tune(llama, samples, site="k", layers=[0], permutations=0, probes=False, progress=False, n_examples=0)
    a = llama.anatomy
    assert len(r.neurons) == a.n_kv_heads * a.d_head


# --------------------------------------------------------------------------- contrast builders
def test_nouns_verbs_rows_carry_spacy_pos(tok):
    docs = [Document("d", "The old dog chased a red ball. Cats sleep.")]
    s = C.nouns_verbs(tok, docs=docs, counts=np.ones(len(tok)))
    ids = tok("The old dog chased a red ball. Cats sleep.")["input_ids"]
    got = {(tok.decode([ids[p]]), g) for p, g in zip(s.rows["position"], s.rows["group"])}
    assert got == {(" dog", "noun"), (" ball", "noun"), (" Cats", "noun"), (" chased", "verb"), (" sleep", "verb")}
    assert set(s.rows.loc[s.y, "pos"]) == {"NOUN"} and set(s.rows.loc[~s.y, "pos"]) == {"VERB"}
    assert (s.rows["token_id"] == [ids[p] for p in s.rows["position"]]).all()


@pytest.mark.parametrize("pooling, expected", [("last", (2,)), ("first", (1,)), ("mean", (1, 2))])
def test_word_pooling_reads_the_chosen_subtokens(tok, pooling, expected):
    text = "The toothbrush broke."
    assert [tok.decode([i]) for i in tok(text)["input_ids"]][1:3] == [" tooth", "brush"]
    s = C.nouns_verbs(tok, docs=[Document("d", text)], word_pooling=pooling, counts=np.ones(len(tok)))
    row = s.rows[s.rows["word"] == "toothbrush"].iloc[0]
    assert tuple(row["positions"]) == expected and row["n_subtokens"] == 2
    assert s.word_pooling == pooling


def test_negation_pairs_are_paired_one_to_one(tok):
    s = C.negation(tok)
    assert s.paired and s.group_sizes() == {"negated": 233, "affirmed": 233}
    neg, aff = s.rows[s.y].reset_index(drop=True), s.rows[~s.y].reset_index(drop=True)
    assert (neg["pair"] == np.arange(233)).all() and (aff["pair"] == np.arange(233)).all()
    assert (neg["token_id"] == aff["token_id"]).all()  # after the edit: the same token in both
    pairs = C.read_pairs()
    for i in (0, 57, 200):
        ids_neg, ids_aff = tok(pairs[i][1])["input_ids"], tok(pairs[i][0])["input_ids"]
        assert s.texts[neg["text"][i]] == pairs[i][1] and s.texts[aff["text"][i]] == pairs[i][0]
        # everything from the read token on is shared: only the context before it differs
        assert ids_neg[neg["position"][i]:] == ids_aff[aff["position"][i]:]
        assert ids_neg[: neg["position"][i]] != ids_aff[: aff["position"][i]]
    final = C.negation(tok, read="final")
    assert (final.rows["token"] == ".").mean() > 0.9


def test_split_words_are_reported_not_dropped(tmp_path, tok):
    (tmp_path / "a.txt").write_text("toothbrush\ntooth\nfloss\n")
    (tmp_path / "b.txt").write_text("sofa\nkettle\nlamp\n")
    s = C.category(tok, words_a=tmp_path / "a.txt", words_b=tmp_path / "b.txt")
    assert s.group_sizes() == {"a": 3, "b": 3}  # nothing dropped
    report = s.split_report.set_index("word")
    assert report.loc["toothbrush", "n_tokens"] == 2 and list(report.loc["toothbrush", "tokens"]) == [" tooth", "brush"]
    assert any("toothbrush" in n and "split" in n for n in s.notes)


def test_category_sentences_with_word_lists(tmp_path, tok):
    (tmp_path / "sa.txt").write_text("My tooth hurts.\nThe dentist smiled.\nNothing here.\n")
    (tmp_path / "sb.txt").write_text("The sofa is red.\nA lamp and a sofa.\n")
    (tmp_path / "wa.txt").write_text("tooth\ndentist\n")
    (tmp_path / "wb.txt").write_text("sofa\nlamp\n")
    s = C.category(tok, words_a=tmp_path / "wa.txt", words_b=tmp_path / "wb.txt",
                   sentences_a=tmp_path / "sa.txt", sentences_b=tmp_path / "sb.txt")
    assert s.group_sizes() == {"wa": 2, "wb": 3}
    assert sorted(s.rows["token"].str.strip()) == ["dentist", "lamp", "sofa", "sofa", "tooth"]
    assert any("1 sentences contain none" in n for n in s.notes)


def test_token_length_is_continuous_with_frequency_control(tok):
    s = C.token_length(tok, docs=[Document("d", "A cat sat on the extraordinary mat.")], counts=np.ones(len(tok)))
    assert s.kind == "continuous" and s.control == ["log_freq"]
    assert (s.rows["label"] == s.rows["token"].str.strip().str.len()).all()
    groups, median = length_groups(s.rows["char_len"])
    assert set(groups) <= {"below median", "at median", "above median"} and median == np.median(s.rows["char_len"])


def test_user_table_labels(tmp_path, tok):
    pd.DataFrame({"text": ["good film", "bad film", "great day", "awful day"], "y": [1, 0, 1, 0]}) \
        .to_csv(tmp_path / "t.csv", index=False)
    s = C.labels(tok, label_column="y", table=tmp_path / "t.csv", counts=np.ones(len(tok)))
    assert s.kind == "binary" and s.group_sizes() == {"y": 2, "not y": 2}
    assert (s.rows["token"] == [" film", " film", " day", " day"]).all()
    with pytest.raises(InputError, match="unknown label column 'nope'"):
        C.labels(tok, label_column="nope", table=tmp_path / "t.csv", counts=np.ones(len(tok)))


# --------------------------------------------------------------------------- statistics plumbing
@pytest.mark.parametrize("paired", [False, True])
def test_null_counts_match_scipy_on_the_same_draws(paired):
    """The shared null (label_draws -> null_pvalues -> count) against scipy's t-tests on the same labellings."""
    from scipy import stats as st

    rng = np.random.default_rng(3)
    n = 40
    y = np.r_[np.ones(n // 2, bool), np.zeros(n // 2, bool)]
    X = rng.standard_normal((n, 60))
    X[y, :3] += 1.5
    design = T.design_for(_synthetic(y, paired=paired))
    draws = label_draws(y, design, 30, seed=5)
    ref = permutation_null(X, y, n_permutations=30, seed=5, paired=paired)
    expected = []
    for d in draws:
        if paired:
            diff = (X[y] - X[~y]) * d[:, None]
            p = st.ttest_1samp(diff, 0.0).pvalue
        else:
            p = st.ttest_ind(X[d > 0.5], X[d < 0.5], equal_var=False).pvalue
        expected.append(int(correct_pvalues(p, "fdr_bh", "model").reject.sum()))
    assert ref.null_counts.tolist() == expected


def test_separable_neuron_gets_a_likelihood_ratio_p_not_a_wald_p():
    y = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    X = np.random.default_rng(0).standard_normal((40, 5))
    X[:, 0] = np.where(y, 5.0, -5.0) + np.linspace(0, 1, 40)
    s = _synthetic(y)
    df, _, _ = layer_binary(X, s, T.design_for(s), cv=5, ks=(1,), rank_by=("mean_diff",), seed=0, probes=False)
    assert df["separable"].iloc[0] and np.isnan(df["logit_p_wald"].iloc[0])
    assert 0 < df["logit_p"].iloc[0] < 1e-8  # LR at the likelihood's supremum: small, finite
    assert df["cv_balanced_accuracy"].iloc[0] == 1.0 and not df["separable"].iloc[1:].any()


def test_too_few_examples_names_the_minimum(tmp_path, llama):
    (tmp_path / "a.txt").write_text("tooth\nteeth\n")
    (tmp_path / "b.txt").write_text("sofa\nlamp\nkettle\nchair\nbed\ntable\n")
    s = C.category(llama.tokenizer, words_a=tmp_path / "a.txt", words_b=tmp_path / "b.txt")
    with pytest.raises(TooFewSamplesError, match=r"group 'a' has 2 samples; .* at least 6 per group"):
        T.tune(llama, s, progress=False)


def test_parse_layers():
    assert parse_layers("0-2,5", 8) == [0, 1, 2, 5] and parse_layers(None, 3) == [0, 1, 2]
    with pytest.raises(InputError, match="layers 0-3"):
        parse_layers("2-9", 4)


def test_unknown_contrast_exits_2():
    result = runner.invoke(app, ["tune", "--contrast", "adjectives", "--model", "random:llama"])
    assert result.exit_code == 2
    assert "unknown contrast 'adjectives'" in result.output and "nouns-verbs" in result.output
    with pytest.raises(InputError, match="unknown contrast"):
        C.build_contrast("adjectives", gpt2_tokenizer())


def test_context_lesson(llama):
    items = [("tooth", "My tooth hurts."), ("sofa", "The sofa is red."), ("kettle", "Boil the kettle now.")]
    r = context_effect(llama, items, site="mlp_post", layers=[0, 3])
    assert set(r.per_layer["comparison"]) == {"alone vs in context", "leading space vs none (alone)",
                                              "two different words alone (baseline)"}
    assert len(r.per_word) == 2 * 3 * 3 and r.per_word["r"].between(-1, 1).all()


# --------------------------------------------------------------------------- the embedded model
@pytest.mark.slow
@pytest.mark.parametrize("contrast", ["nouns-verbs", "negation", "proper-nouns", "token-length", "category"])
def test_builtin_contrasts_on_embedded_model(tmp_path, contrast):
    result = runner.invoke(app, ["tune", "--contrast", contrast, "--layers", "0,15,29", "--max-tokens", "3000",
                                 "--max-per-group", "150", "--rank-by", "mean_diff", "--permutations", "20",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout[result.stdout.index("{"):])["settings"]
    # SmolLM2-135M: 1536 MLP neurons a layer; three layers asked for; BH within each layer at the default 0.05
    assert s["family_description"] == "each layer (1536 mlp_post neurons per layer, 3 layers)"
    assert s["correction"] == "Benjamini-Hochberg FDR q < 0.05 (primary) and Bonferroni p x m < 0.05"
    assert ("paired t-test" in s["test"]) == (contrast == "negation") == s["paired"]
    assert ("cluster-robust" in s["test"]) == (s["unit_level"] == "clustered")
    assert f"Family: {s['family_description']}. Correction: {s['correction']} over that family" in s["statement"]


# --------------------------------------------------------------------------- units through the command line
def _unit_table(tmp_path):
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(12)], 4)
    label = np.repeat(rng.permutation(np.arange(12) < 6), 4)
    words = ["cat", "dog", "tree", "car", "book", "lamp"]
    texts = [f"Speaker {s} said the {words[i % 6]} was here." for i, s in enumerate(speakers)]
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": texts, "label": label, "speaker": speakers}).to_csv(path, index=False)
    return path


def test_tune_cli_unit_column_end_to_end(tmp_path):
    path = _unit_table(tmp_path)
    base = ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path), "--label-column", "label",
            "--layers", "0,1", "--permutations", "5", "--no-probes", "--reference-permutations", "0", "--cv", "3"]
    result = runner.invoke(app, base + ["--unit-column", "speaker", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["settings"]["unit"] == "speaker" and "one-way cluster-robust" in report["settings"]["test"]
    assert [r["layer"] for r in report["layers"]] == [0, 1]
    assert all(r["n_significant"] <= r["n_neurons"] == 512 for r in report["layers"])
    occ = runner.invoke(app, base + ["--unit", "occurrence", "--json"])
    assert occ.exit_code == 0 and "occurrence-level Welch" in json.loads(occ.stdout[occ.stdout.index("{"):])[
        "settings"]["test"]


@pytest.mark.parametrize("extra,message", [
    (["--unit-column", "nope"], "unknown --unit-column 'nope'"),
    (["--alpha", "1.5"], "--alpha"),
    (["--unit", "types"], "--unit 'types'"),
])
def test_tune_cli_bad_unit_input_exits_2(tmp_path, extra, message):
    path = _unit_table(tmp_path)
    result = runner.invoke(app, ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path),
                                 "--label-column", "label", "--layers", "0", "--permutations", "0"] + extra)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_single_level_unit_and_missing_spacy_exit_2(tmp_path, monkeypatch):
    path = _unit_table(tmp_path)
    df = pd.read_csv(path).assign(room="one")
    df.to_csv(path, index=False)
    result = runner.invoke(app, ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path),
                                 "--label-column", "label", "--unit-column", "room", "--layers", "0"])
    assert result.exit_code == 2 and "single level" in result.output
    import sys

    from lamina.data import labels as lab

    monkeypatch.setattr(lab, "_NLP", None)
    monkeypatch.setitem(sys.modules, "spacy", None)  # import spacy -> ImportError
    result = runner.invoke(app, ["tune", "--model", "random:llama", "--contrast", "nouns-verbs", "--layers", "0"])
    assert result.exit_code == 2 and "pip install 'lamina[linguistics]'" in result.output, result.output


def test_too_few_word_types_for_grouped_cv_names_the_minimum(tmp_path, llama):
    (tmp_path / "a.txt").write_text("tooth\nteeth\ngum\n")
    (tmp_path / "b.txt").write_text("sofa\nlamp\nkettle\nchair\nbed\ntable\n")
    s = C.category(llama.tokenizer, words_a=tmp_path / "a.txt", words_b=tmp_path / "b.txt")
    with pytest.raises(TooFewSamplesError, match="at least 5 per group"):
        T.check_sizes(s, 5, T.design_for(s), replication=False)
