"""Known answers for the small-sample primary test (issue 19): CR2 against a hand-written dense implementation,
the exact reduction to Welch's test with one sample per cluster, the simulations of the designs users run
(benchmarks/small_sample.py: CR2 holds its level, CR1 does not in the rare-class and unequal-variance
designs, a planted effect is found), the one null (NaN-p rule, failed draws counted), randomization p at the
unit, and the design's controls (fixed effects) with their bad-input lines."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from typer.testing import CliRunner

from lamina.analyses.tuning import contrasts as C
from lamina.analyses.tuning.design import design_for, few_levels_notes
from lamina.cli import app
from lamina.errors import InputError
from lamina.stats import PrimaryDesign, cluster_ols, label_draws, primary_test
from lamina.stats.nulls import null_counts, permutation_pvalues, permutations_for

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _driver():
    spec = importlib.util.spec_from_file_location("small_sample", ROOT / "benchmarks" / "small_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- CR2 by hand (dense, one neuron at a time)
def _cr2_dense(X, x, clusters, C=None):
    """Textbook CR2 (Bell-McCaffrey): A_g = (I - H_gg)^(-1/2) (Moore-Penrose), V = sum over the CGM terms of
    (w_g' A_g e_g)^2; and each one-way term's Satterthwaite df under the working model Omega = s1 diag(x) +
    s0 diag(1-x) + tau (J - I), its parameters solved from E[e'K e] = tr((I-H)K(I-H)Omega) with n x n
    matrices. Returns (se [m], df [m])."""
    n = len(x)
    D = np.column_stack([np.ones(n), x] + ([] if C is None else [C]))
    B = np.linalg.inv(D.T @ D)
    H = D @ B @ D.T
    IH = np.eye(n) - H
    w = D @ B @ np.eye(D.shape[1])[1]
    terms = list(clusters) + ([np.array([f"{a}|{b}" for a, b in zip(*clusters)])] if len(clusters) == 2 else [])
    signs = [1, 1, -1][:len(terms)]
    Ws, Js = [], []
    for cl in terms:
        W, J = np.zeros((n, len(np.unique(cl)))), np.zeros((n, n))
        for gi, g in enumerate(np.unique(cl)):
            idx = np.nonzero(cl == g)[0]
            lam, U = np.linalg.eigh(np.eye(len(idx)) - H[np.ix_(idx, idx)])
            A = U @ np.diag(np.where(lam > 1e-10, 1 / np.sqrt(np.clip(lam, 1e-300, None)), 0)) @ U.T
            W[idx, gi] = A @ w[idx]
            J[np.ix_(idx, idx)] = 1
        Ws.append(W)
        Js.append(J - np.eye(n))
    se, df = [], []
    for j in range(X.shape[1]):
        e = IH @ X[:, j]
        parts = [((W.T @ e) ** 2).sum() for W in Ws]
        V = sum(s * v for s, v in zip(signs, parts))
        se.append(np.sqrt(V if V > 0 else max(parts[:2])))
        dfs = []
        for W, K in zip(Ws[:2], Js[:2]):
            Ks = [np.diag(x), np.diag(1 - x)] + ([K] if K.any() else [])
            T = np.array([[np.trace(IH @ a @ IH @ b) for b in Ks] for a in Ks])
            om = np.linalg.solve(T, [e @ k @ e for k in Ks])
            om[:2] = np.maximum(om[:2], 0)
            if len(om) == 3:
                om[2] = np.clip(om[2], 0, om[:2].min())
            Om = sum(o * k for o, k in zip(om, Ks))
            G = IH @ W
            OO = G @ G.T @ Om
            dfs.append(np.trace(OO) ** 2 / np.trace(OO @ OO))
        df.append(min(dfs))
    return np.array(se), np.array(df)


@pytest.mark.parametrize("two_way,controls", [(False, False), (False, True), (True, False), (True, True)])
def test_cr2_matches_a_dense_hand_written_implementation(two_way, controls):
    rng = np.random.default_rng(1)
    n = 70
    types, paragraphs = rng.integers(0, 14, n), rng.integers(0, 6, n)
    x = (types % 2).astype(float)
    X = rng.normal(size=(n, 4)) + rng.normal(size=(14, 4))[types] + 0.5 * rng.normal(size=(6, 4))[paragraphs]
    Cv = rng.normal(size=(n, 2)) if controls else None
    groups = [types, paragraphs] if two_way else [types]
    out = cluster_ols(X, x, groups, control=Cv)
    se, df = _cr2_dense(X, x, groups, Cv)
    np.testing.assert_allclose(out["se"], se, rtol=1e-9)
    np.testing.assert_allclose(out["df"], df, rtol=1e-8)
    np.testing.assert_allclose(out["p"], 2 * st.t.sf(np.abs(out["coef"] / se), df), rtol=1e-8)


@pytest.mark.parametrize("n1,n0,sd1", [(8, 40, 3.0), (32, 32, 2.0), (5, 200, 0.5)])
def test_singleton_clusters_give_welchs_test_exactly(n1, n0, sd1):
    """One sample per cluster, binary label: CR2's V is Welch's s1^2/n1 + s0^2/n0 and its df are
    Welch-Satterthwaite's, so t, df and p equal scipy's Welch test."""
    rng = np.random.default_rng(n1)
    y = np.r_[np.ones(n1), np.zeros(n0)]
    X = rng.normal(size=(n1 + n0, 50)) * np.where(y[:, None] > 0, sd1, 1.0) + 0.3 * y[:, None]
    out = cluster_ols(X, y, [np.arange(n1 + n0)])
    ref = st.ttest_ind(X[y > 0], X[y == 0], equal_var=False)
    np.testing.assert_allclose(out["t"], ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(out["df"], ref.df, rtol=1e-10)
    np.testing.assert_allclose(out["p"], ref.pvalue, rtol=1e-6, atol=1e-15)


# --------------------------------------------------------------------------- the simulations (known answers)
@pytest.fixture(scope="module")
def simulated():
    mod = _driver()
    return {name: mod.rates(name, seeds=range(4), m=2000) for name in mod.SCENARIOS}


NULL_SCENARIOS = ["balanced, 40 clusters", "5 clusters", "rare class, 8 of 200",
                  "unequal sizes, one cluster half the rows", "unequal variances, singletons (12 vs 120)"]


@pytest.mark.parametrize("scenario", NULL_SCENARIOS)
def test_primary_test_holds_its_level(simulated, scenario):
    rate, se = simulated[scenario]["CR2"]
    print(f"{scenario}: CR2 {rate:.4f} +- {se:.4f}, CR1 {simulated[scenario]['CR1'][0]:.4f}")
    assert rate <= 0.05 + 2.5 * se, (scenario, rate, se)


@pytest.mark.parametrize("scenario", ["rare class, 8 of 200", "unequal variances, singletons (12 vs 120)",
                                      "unequal sizes, one cluster half the rows"])
def test_old_cr1_test_over_rejects(simulated, scenario):
    rate, se = simulated[scenario]["CR1"]
    assert rate > 0.05 + 4 * se, (scenario, rate, se)


def test_planted_effect_is_found(simulated):
    power, se = simulated["planted effect (power)"]["CR2"]
    print(f"power at a unit-level effect of 0.8 noise sd, 40 clusters: {power:.3f} +- {se:.3f}")
    assert power > 0.5


# --------------------------------------------------------------------------- one null: the NaN-p rule, failed draws
def test_null_counts_keep_the_family_and_count_failed_draws():
    """A tested neuron undefined under one draw counts as p = 1 (the family stays m); a draw undefined for
    every neuron failed: it is left out of the null and counted."""
    P = np.array([[0.001, 0.001, np.nan, 0.5],     # 2 of 4 significant with m = 4 (BH: 0.001 <= 0.05 * 1/4)
                  [np.nan] * 4,                    # failed
                  [0.0001, 0.2, 0.3, 0.4]])
    counts, failed = null_counts([P], "model", 0.05)
    assert failed == 1 and counts[:, 0].tolist() == [2, 1]
    # the same draws through two layers with the family each layer
    counts, failed = null_counts([P[:, :2], P[:, 2:]], "layer", 0.05)
    assert failed == 1 and counts.tolist() == [[2, 0], [1, 0]]


def test_failed_label_draw_is_a_nan_row_not_an_exception():
    from lamina.stats.primary import null_pvalues

    rng = np.random.default_rng(0)
    types = np.repeat(np.arange(10), 3)
    y = (types < 5).astype(float)
    X = rng.normal(size=(30, 3))
    design = PrimaryDesign(unit_names=("t",), clusters=(types,))
    P = null_pvalues(X, y, design, np.vstack([y, np.ones(30)]))
    assert np.isfinite(P[0]).all() and np.isnan(P[1]).all()


# --------------------------------------------------------------------------- randomization inference at the unit
def test_permutation_pvalues_match_a_loop_over_scipy_and_find_a_planted_neuron():
    rng = np.random.default_rng(2)
    n = 40
    y = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    X = rng.normal(size=(n, 6))
    X[y, 0] += 3.0
    design = PrimaryDesign()
    res = permutation_pvalues(X, y, design, 199, seed=3, chunk=50)
    observed = st.ttest_ind(X[y], X[~y], equal_var=False).pvalue
    hits = np.zeros(6)
    for start in range(0, 199, 50):
        for d in label_draws(y, design, min(50, 199 - start), 3 + start):
            hits += st.ttest_ind(X[d > 0.5], X[d < 0.5], equal_var=False).pvalue <= observed * (1 + 1e-12)
    np.testing.assert_allclose(res.p, (1 + hits) / 200)
    assert res.p[0] == pytest.approx(1 / 200) and res.n_draws == 199 and res.n_failed == 0
    assert permutations_for(576, 0.05) == 11519  # 1 / (B + 1) = alpha / m


def test_permutation_pvalues_are_uniform_under_the_unit_null():
    """Labels random per cluster, strong cluster effects: the randomization p at the unit keeps its level."""
    rng = np.random.default_rng(4)
    types = np.repeat(np.arange(16), 5)
    y = np.isin(types, rng.choice(16, 8, replace=False))
    X = 2 * rng.normal(size=(16, 300))[types] + rng.normal(size=(80, 300))
    design = PrimaryDesign(unit_names=("word_type",), clusters=(types,))
    res = permutation_pvalues(X, y, design, 99, seed=0)
    assert (res.p <= 0.05).mean() <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 300)
    assert res.n_labellings == 12870  # C(16, 8)


# --------------------------------------------------------------------------- design factors vs units
def _templates(seed=0, effect=0.0):
    """60 words x 5 templates, a label per word (30 / 30), a strong template effect crossed with every word."""
    rng = np.random.default_rng(seed)
    words, templates = np.repeat(np.arange(60), 5), np.tile(np.arange(5), 60)
    y = words < 30
    n = len(y)
    rows = pd.DataFrame({"text": np.arange(n), "positions": [(1,)] * n, "position": 1, "token_id": words,
                         "token": "x", "word": "", "n_subtokens": 1, "label": y, "group": np.where(y, "a", "b"),
                         "pair": -1, "char_len": 3, "log_freq": 1.0, "word_type": words.astype(str),
                         "paragraph": np.arange(n), "doc": 0, "lemma": words, "template": templates,
                         "room": "one"})
    X = 3 * rng.normal(size=(5, 40))[templates] + rng.normal(size=(60, 40))[words] + rng.normal(size=(n, 40))
    X[:, 0] += effect * y
    return C.SampleSet("labels", ["x"] * n, rows, "binary", ("a", "b"), "label", "synthetic"), X


def test_control_is_a_fixed_effect_and_a_crossed_unit_gets_its_line():
    s, X = _templates(effect=2.0)
    crossed = design_for(s, ("lemma", "template"))
    notes = few_levels_notes(s, crossed)
    assert len(notes) == 1 and "unit 'template' has 5 levels" in notes[0] and "--control template" in notes[0]
    fixed = design_for(s, ("lemma",), control=("template",))
    assert fixed.control.shape == (300, 4) and fixed.control_names == ("template",)
    assert few_levels_notes(s, fixed) == []
    out = primary_test(X, s.y, fixed)
    # the slope with template fixed effects is the within-template difference in means (balanced: the plain one)
    np.testing.assert_allclose(out["coef"], X[s.y].mean(0) - X[~s.y].mean(0), rtol=1e-9)
    assert out["p"].iat[0] < 1e-6 and (out["df"] > 20).all()  # the df come from 60 words, not 5 templates


@pytest.mark.parametrize("unit,control,message", [
    (("template",), ("template",), "both --control and --unit-column"),
    (("lemma",), ("room",), "--control 'room' has a single level"),
    (("lemma",), ("nope",), "unknown --control 'nope'"),
])
def test_bad_controls_raise_one_line(unit, control, message):
    s, _ = _templates()
    with pytest.raises(InputError, match=message):
        design_for(s, unit, control)


def _table(tmp_path, n_words=12):
    """A labels table with its own `word` and `token` columns (names lamina uses itself) and a template."""
    words = [f"w{i}" for i in range(n_words)]
    rows = [{"text": f"The {w} sat here {t}.", "label": int(i % 2), "word": w, "token": f"t{i % 3}", "template": t}
            for i, w in enumerate(words) for t in range(3)]
    path = tmp_path / "t.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_table_columns_named_like_lamina_columns_work(tmp_path):
    path = _table(tmp_path)
    base = ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path), "--label-column",
            "label", "--layers", "0", "--permutations", "3", "--no-probes", "--reference-permutations", "0",
            "--cv", "3", "--json"]
    result = runner.invoke(app, base + ["--unit-column", "word", "--control", "template"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["settings"]["unit"] == "word" and "fixed effects of template" in report["settings"]["test"]
    assert report["settings"]["unit_counts"] is not None and report["settings"]["null_draws_failed"] == 0
    crossed = runner.invoke(app, base + ["--unit-column", "word", "--unit-column", "template"])
    assert crossed.exit_code == 0, crossed.output
    notes = json.loads(crossed.stdout[crossed.stdout.index("{"):])["settings"]["notes"]
    assert any("unit 'template' has 3 levels" in n and "--control template" in n for n in notes), notes


@pytest.mark.parametrize("extra,message", [
    (["--unit-column", "template", "--control", "template"], "both --control and --unit-column"),
    (["--unit-column", "word", "--control", "nope"], "unknown --control 'nope'"),
    (["--p", "exact"], "unknown --p 'exact'"),
])
def test_cli_bad_control_exits_2_with_one_line(tmp_path, extra, message):
    path = _table(tmp_path)
    result = runner.invoke(app, ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path),
                                 "--label-column", "label", "--layers", "0", "--permutations", "0"] + extra)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_tune_with_permutation_p_end_to_end(tmp_path):
    """--p permutation: each neuron's p is a randomization p at the unit, with enough draws for BH over the
    layer (B = ceil(m / alpha) - 1), the analytic p kept beside it."""
    path = _table(tmp_path)
    result = runner.invoke(app, ["tune", "--model", "random:llama", "--contrast", "labels", "--table", str(path),
                                 "--label-column", "label", "--layers", "0", "--site", "resid_post", "--unit-column",
                                 "word", "--control", "template", "--p", "permutation", "--permutations", "0",
                                 "--no-probes", "--reference-permutations", "0", "--cv", "3", "--json",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    r = report["settings"]["randomization"]
    neurons = pd.read_csv(tmp_path / "out" / "neurons.csv")
    m = int(neurons["p"].notna().sum())
    assert r["draws_per_layer"] == permutations_for(m, 0.05) and r["failed_draws"] == 0
    assert r["distinct_labellings"] == 924  # C(12 words, 6 positive)
    assert (neurons["p"] >= 1 / (r["draws_per_layer"] + 1) - 1e-12).all() and "p_analytic" in neurons
