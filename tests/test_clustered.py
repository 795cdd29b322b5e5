"""Known answers for the unit-of-replication machinery: cluster-robust OLS against statsmodels, calibration on
simulated clustered data (the occurrence-level test fails it, the clustered one passes), planted effects,
paired designs, unit-level null draws, grouped CV folds and the bad-input messages."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lamina.analyses.tuning import contrasts as C
from lamina.analyses.tuning import run as T
from lamina.errors import InputError
from lamina.stats import (
    PrimaryDesign,
    TooFewSamplesError,
    cluster_ols,
    correct_pvalues,
    label_draws,
    logistic_tests,
    permutation_null,
    primary_test,
)
from lamina.stats.probes import cv_folds


def _clustered_data(seed, n_types=60, per_type=20, n_paragraphs=100, m=200, effect=0.0, n_planted=0):
    """Occurrences of word types in paragraphs: activation = type effect + paragraph effect + noise, and a
    random label per word type (the truth: no neuron is tuned, unless `effect` is planted in the first
    `n_planted` neurons at the type level)."""
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(n_types), per_type)
    paragraphs = rng.integers(0, n_paragraphs, len(types))
    type_label = rng.permutation(np.arange(n_types) < n_types // 2)
    y = type_label[types]
    X = (rng.normal(size=(n_types, m))[types] + 0.5 * rng.normal(size=(n_paragraphs, m))[paragraphs]
         + rng.normal(size=(len(types), m)))
    X[:, :n_planted] += effect * y[:, None]
    return X, y, types, paragraphs


def _discoveries(X, y, design) -> int:
    p = primary_test(X, y, design)["p"].to_numpy()
    return int(correct_pvalues(p, "fdr_bh", "model").reject.sum())


# --------------------------------------------------------------------------- against statsmodels
@pytest.mark.parametrize("two_way,controls", [(False, False), (True, False), (True, True), (False, True)])
def test_cluster_ols_matches_statsmodels(two_way, controls):
    """CR1 (the old test, kept for comparison) is statsmodels' cluster covariance; CR2 is checked against a
    hand-written dense implementation in tests/test_small_sample.py."""
    rng = np.random.default_rng(0)
    X, y, types, paragraphs = _clustered_data(0, n_types=40, per_type=12, n_paragraphs=25, m=6)
    Cv = rng.normal(size=(len(y), 2)) if controls else None
    groups = [types, paragraphs] if two_way else [types]
    out = cluster_ols(X, y.astype(float), groups, control=Cv, vcov="CR1")
    D = np.column_stack([np.ones(len(y)), y.astype(float)] + ([Cv] if controls else []))
    g = np.column_stack(groups) if two_way else types
    for j in range(4):
        ref = sm.OLS(X[:, j], D).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
        assert out["coef"][j] == pytest.approx(ref.params[1], rel=1e-10)
        assert out["se"][j] == pytest.approx(ref.bse[1], rel=1e-10)
        assert out["p"][j] == pytest.approx(ref.pvalues[1], rel=1e-8)
        assert out["df"] == ref.df_resid_inference


def test_cluster_ols_slope_of_binary_label_is_the_difference_in_means():
    X, y, types, paragraphs = _clustered_data(1, m=3)
    out = cluster_ols(X, y, [types, paragraphs])
    np.testing.assert_allclose(out["coef"], X[y].mean(0) - X[~y].mean(0), rtol=1e-10)


# --------------------------------------------------------------------------- calibration (known answers)
def test_type_level_null_clustered_test_is_calibrated_occurrence_test_is_not():
    """20 simulated corpora, labels random per word type: the occurrence-level test 'finds' tuned neurons in
    every one; the two-way clustered test's family-wise error (= FDR when every null is true) stays near 5%."""
    occurrence, clustered = [], []
    for seed in range(20):
        X, y, types, paragraphs = _clustered_data(seed)
        occurrence.append(_discoveries(X, y, PrimaryDesign()))
        clustered.append(_discoveries(X, y, PrimaryDesign(unit_names=("word_type", "paragraph"),
                                                          clusters=(types, paragraphs))))
    assert min(occurrence) > 20, occurrence            # about a third of the 200 neurons, every time
    assert sum(c > 0 for c in clustered) <= 3, clustered  # P(any discovery) <= 0.05 nominal: 1 expected of 20
    assert sum(clustered) <= 6, clustered


def test_planted_type_level_effect_is_found_by_the_clustered_test():
    X, y, types, paragraphs = _clustered_data(7, effect=1.5, n_planted=10)
    design = PrimaryDesign(unit_names=("word_type", "paragraph"), clusters=(types, paragraphs))
    p = primary_test(X, y, design)["p"].to_numpy()
    reject = correct_pvalues(p, "fdr_bh", "model").reject
    assert reject[:10].sum() >= 9 and reject[10:].sum() <= 1


def test_unit_level_null_band_holds_the_type_level_null():
    """The permutation null permutes labels among word types: under a type-level null the observed count sits
    inside its band, and each draw keeps one label per type."""
    X, y, types, paragraphs = _clustered_data(3)
    design = PrimaryDesign(unit_names=("word_type", "paragraph"), clusters=(types, paragraphs))
    draws = label_draws(y, design, 5, seed=0)
    for d in draws:
        assert pd.Series(d).groupby(types).nunique().max() == 1 and d.sum() == y.sum()
    res = permutation_null(X, y, n_permutations=20, seed=0, design=design)
    assert res.observed <= res.band[1] + 1 and res.unit == "word_type x paragraph"


def test_paired_design_calibrated_and_finds_planted_effect():
    """Pairs with a large pair effect and a random within-pair order: the paired t (pair = unit) keeps its
    level over seeds, and a planted within-pair effect is found."""
    anys = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        base = 3 * rng.normal(size=(30, 150))
        a, b = base + rng.normal(size=base.shape), base + rng.normal(size=base.shape)
        X, y = np.vstack([a, b]), np.repeat([True, False], 30)
        anys += _discoveries(X, y, PrimaryDesign(paired=True, unit_names=("pair",))) > 0
    assert anys <= 3
    a[:, :5] += 1.5
    X = np.vstack([a, b])
    p = primary_test(X, y, PrimaryDesign(paired=True))["p"].to_numpy()
    assert correct_pvalues(p, "fdr_bh", "model").reject[:5].all()


# --------------------------------------------------------------------------- side tests
def test_grouped_cv_never_splits_a_unit_and_names_the_minimum():
    X, y, types, _ = _clustered_data(2, n_types=20, per_type=5, m=3)
    for tr, te in cv_folds(y, 5, 0, groups=types):
        assert not set(types[tr]) & set(types[te])
    res = logistic_tests(X, y, cv=5, groups=types)
    assert res["cv_auc"].between(0, 1).all()
    few = np.where(y, types % 3, 100 + types % 3)  # 3 groups per class
    with pytest.raises(TooFewSamplesError, match="at least 5 units"):
        cv_folds(y, 5, 0, groups=few)


def test_grouped_cv_removes_the_type_level_optimism():
    """Under a type-level null, folds that split word types decode the label above chance on average (the
    type identity leaks); folds grouped by type sit at chance. The best neuron's AUC is high either way
    (0.6-0.67 here): why every "best" figure needs its null reference."""
    plain, grouped = [], []
    for seed in range(4, 8):
        X, y, types, _ = _clustered_data(seed, n_types=40, per_type=10, m=40)
        plain.append(logistic_tests(X, y, cv=5)["cv_auc"].mean())
        grouped.append(logistic_tests(X, y, cv=5, groups=types)["cv_auc"].mean())
    assert np.mean(plain) - np.mean(grouped) > 0.03 and np.mean(grouped) < 0.52, (plain, grouped)


# --------------------------------------------------------------------------- samples and bad input
def _samples(units=("word_type", "paragraph")) -> C.SampleSet:
    X, y, types, paragraphs = _clustered_data(0, n_types=10, per_type=4, m=1)
    n = len(y)
    rows = pd.DataFrame({"text": paragraphs, "positions": [(p % 3,) for p in range(n)], "position": 0,
                         "token_id": types, "token": "x", "word": "", "n_subtokens": 1, "label": y,
                         "group": np.where(y, "a", "b"), "pair": -1, "char_len": 3, "log_freq": 1.0,
                         "word_type": types.astype(str), "paragraph": paragraphs, "doc": 0})
    return C.SampleSet("test", ["x"] * 100, rows, "binary", ("a", "b"), "test", "synthetic", units=units)


def test_design_for_units_and_bad_input():
    s = _samples()
    d = T.design_for(s)
    assert d.level == "clustered" and d.unit() == "word_type x paragraph"
    assert T.design_for(s, "occurrence").level == "occurrence"
    assert T.design_for(s, ["paragraph"]).unit_names == ("paragraph",)
    with pytest.raises(InputError, match="unknown --unit-column 'speaker'"):
        T.design_for(s, ["speaker"])
    with pytest.raises(InputError, match="unit 'doc' has a single level"):
        T.design_for(s, "doc")
    with pytest.raises(InputError, match="at most two"):
        T.design_for(s, "word_type,paragraph,text")


def test_first_token_samples_are_dropped_with_a_note():
    s = _samples()
    kept = T.drop_first_token(s)
    assert len(kept.rows) == len(s.rows) - int(s.rows["positions"].map(lambda p: 0 in p).sum())
    assert not kept.rows["positions"].map(lambda p: 0 in p).any() and "attention sink" in kept.notes[-1]
