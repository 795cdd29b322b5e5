"""Known-answer tests for lamina.stats / lamina.probes on constructed data."""
import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from statsmodels.stats.multitest import multipletests

from lamina import stats as ls
from lamina.errors import LaminaError
from lamina.stats import logistic_tests, rank_neurons, sparse_probe
from lamina.stats.primary import t_pvalues_batch

PLANTED = [3, 17, 42, 99, 250]


@pytest.fixture(scope="module")
def planted():
    """200 samples x 400 noise neurons; PLANTED neurons shift by 1.5 SD in the positive class."""
    rng = np.random.default_rng(0)
    y = np.repeat([True, False], 100)
    X = rng.normal(size=(200, 400))
    X[:, PLANTED] += 1.5 * y[:, None]
    return X, y


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(1)
    return rng.normal(size=(120, 300)), rng.permutation(np.repeat([True, False], 60))


# --------------------------------------------------------------------------- contrasts
def test_planted_neurons_found_and_noise_count_within_null(planted, noise):
    X, y = planted
    res = ls.contrast_tests(X, y)
    assert (res.loc[PLANTED, "p"] < 1e-10).all()
    corrected = ls.correct_pvalues(res["p"], method="fdr_bh", family="model")
    assert corrected.reject[PLANTED].all()
    assert corrected.reject.sum() <= len(PLANTED) + 2  # at most a couple of false discoveries

    Xn, yn = noise
    null = ls.permutation_null(Xn, yn, n_permutations=100, seed=0)
    assert null.null_counts.shape == (100,)
    assert null.band[0] <= null.observed <= null.band[1]
    assert null.p_value > 0.05
    planted_null = ls.permutation_null(X, y, n_permutations=100, seed=0)
    assert planted_null.observed >= len(PLANTED) > planted_null.band[1]
    assert planted_null.p_value == pytest.approx(1 / 101)


def test_permutation_null_paired_swaps_within_pairs():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 200)) * 3  # large pair effect that a paired test removes
    a = base + rng.normal(size=(40, 200)) * 0.5
    b = base + rng.normal(size=(40, 200)) * 0.5
    a[:, :4] += 1.0
    X, y = np.vstack([a, b]), np.repeat([True, False], 40)
    res = ls.permutation_null(X, y, n_permutations=100, paired=True, seed=1)
    assert res.observed >= 4 > res.band[1]
    assert res.p_value < 0.05
    # the batched t used for the null equals scipy's paired t on the true labels
    d = a - b
    p_batch = t_pvalues_batch(d, np.ones((1, 40)), paired=True)[0]
    np.testing.assert_allclose(p_batch, stats.ttest_rel(a, b).pvalue, rtol=1e-9)


def test_batched_welch_matches_scipy(planted):
    X, y = planted
    p_batch = t_pvalues_batch(X, y[None].astype(float), paired=False)[0]
    np.testing.assert_allclose(p_batch, stats.ttest_ind(X[y], X[~y], equal_var=False).pvalue,
                               rtol=1e-8)


@pytest.mark.filterwarnings("error")
def test_contrast_values_match_scipy_and_hand_formulas():
    rng = np.random.default_rng(3)
    y = np.array([1] * 12 + [0] * 9)
    X = rng.normal(size=(21, 6)) * [1, 2, 3, 1, 1, 1]
    X[:, 1] += y * 1.2
    X[:, 4] = 5.0  # constant in both groups
    X[:, 5] = np.where(y == 1, 2.0, -1.0)  # constant within each group, different means
    res = ls.contrast_tests(X, y)
    pos, neg = X[y == 1], X[y == 0]
    for j in range(4):
        t, p = stats.ttest_ind(pos[:, j], neg[:, j], equal_var=False)
        u, pu = stats.mannwhitneyu(pos[:, j], neg[:, j], alternative="two-sided")
        sp = np.sqrt((11 * pos[:, j].var(ddof=1) + 8 * neg[:, j].var(ddof=1)) / 19)
        assert res.loc[j, "t"] == pytest.approx(t, rel=1e-12)
        assert res.loc[j, "p"] == pytest.approx(p, rel=1e-10)
        assert res.loc[j, "u"] == u and res.loc[j, "p_mwu"] == pytest.approx(pu, rel=1e-10)
        assert res.loc[j, "cohens_d"] == pytest.approx((pos[:, j].mean() - neg[:, j].mean()) / sp)
        assert res.loc[j, "diff"] == pytest.approx(pos[:, j].mean() - neg[:, j].mean())
    assert res["constant"].tolist() == [False] * 4 + [True, True]
    assert res.loc[[4, 5], ["t", "p", "cohens_d"]].isna().all().all()
    assert res.loc[5, "diff"] == 3.0


@pytest.mark.filterwarnings("error")
def test_paired_contrast_matches_ttest_rel_and_dz():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(15, 5))
    b = a + rng.normal(size=(15, 5)) * 0.3 + [0, 0.5, 0, 0, 0]
    b[:, 4] = a[:, 4] + 1.0  # constant pair difference: t undefined
    res = ls.contrast_tests(np.vstack([a, b]), np.repeat([1, 0], 15), paired=True)
    ref = stats.ttest_rel(a[:, :4], b[:, :4])
    np.testing.assert_allclose(res["t"][:4], ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(res["p"][:4], ref.pvalue, rtol=1e-10)
    d = a - b
    np.testing.assert_allclose(res["cohens_dz"][:4], (d.mean(0) / d.std(0, ddof=1))[:4])
    d_av = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
    np.testing.assert_allclose(res["cohens_d"][:4], d_av[:4])
    assert res["p_mwu"].isna().all()
    assert res.loc[4, "constant"] and np.isnan(res.loc[4, "t"])
    with pytest.raises(ValueError, match="equal group sizes"):
        ls.contrast_tests(np.vstack([a, b[:-1]]), np.repeat([1, 0], [15, 14]), paired=True)


def test_input_validation():
    X = np.random.default_rng(5).normal(size=(10, 3))
    with pytest.raises(ls.TooFewSamplesError, match="at least 3"):
        ls.contrast_tests(X, [1, 1] + [0] * 8)
    with pytest.raises(ValueError, match="has 9 entries but X has 10"):
        ls.contrast_tests(X, [1] * 5 + [0] * 4)
    with pytest.raises(ValueError, match="single class"):
        ls.logistic_tests(X, [1] * 10)
    with pytest.raises(ValueError, match="binary"):
        ls.contrast_tests(X, np.arange(10))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ls.contrast_tests(bad, [1] * 5 + [0] * 5)
    with pytest.raises(ValueError, match="constant"):
        ls.correlation_tests(X, np.ones(10))
    with pytest.raises(ValueError, match="layer_index"):
        ls.correct_pvalues(np.full(5, 0.5), family="layer")
    assert issubclass(ls.TooFewSamplesError, ValueError)
    assert issubclass(ls.TooFewSamplesError, LaminaError)


# --------------------------------------------------------------------------- correlations
def test_correlation_and_partial_correlation():
    rng = np.random.default_rng(6)
    n = 300
    logfreq = rng.normal(size=n)
    length = -0.8 * logfreq + rng.normal(size=n) * 0.6
    X = np.column_stack([
        logfreq + rng.normal(size=n) * 0.5,  # tracks frequency only: partial r ~ 0
        length + rng.normal(size=n),  # tracks length beyond frequency
        rng.normal(size=n), np.full(n, 2.0)])
    res = ls.correlation_tests(X, length, control=logfreq)
    for j in range(3):
        r, p = stats.pearsonr(X[:, j], length)
        assert res.loc[j, "r"] == pytest.approx(r, rel=1e-10)
        assert res.loc[j, "p"] == pytest.approx(p, rel=1e-8)
        # residual method: regress both on [1, control], correlate residuals, t with n-3 df
        rx = X[:, j] - np.polyval(np.polyfit(logfreq, X[:, j], 1), logfreq)
        rz = length - np.polyval(np.polyfit(logfreq, length, 1), logfreq)
        pr = stats.pearsonr(rx, rz)[0]
        pp = 2 * stats.t.sf(abs(pr) * np.sqrt((n - 3) / (1 - pr ** 2)), n - 3)
        assert res.loc[j, "partial_r"] == pytest.approx(pr, rel=1e-9)
        assert res.loc[j, "partial_p"] == pytest.approx(pp, rel=1e-8)
        # closed-form first-order partial correlation from the three pairwise correlations
        rxz, rxc, rzc = (np.corrcoef(u, v)[0, 1] for u, v in
                         [(X[:, j], length), (X[:, j], logfreq), (length, logfreq)])
        formula = (rxz - rxc * rzc) / np.sqrt((1 - rxc ** 2) * (1 - rzc ** 2))
        assert res.loc[j, "partial_r"] == pytest.approx(formula, rel=1e-9)
    assert res.loc[0, "r"] < -0.4 and abs(res.loc[0, "partial_r"]) < 0.15
    assert res.loc[1, "partial_p"] < 1e-10
    assert res.loc[3, "constant"] and res.loc[3, ["r", "p", "partial_r"]].isna().all()


# --------------------------------------------------------------------------- logistic
@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(7)
    n = 160
    y = rng.permutation(np.repeat([1, 0], [70, 90])).astype(bool)
    X = rng.normal(size=(n, 8)) * [1, 3, 0.1, 1, 1, 1, 1, 1] + 10
    X[:, :4] += y[:, None] * np.array([0.8, 2.0, 0.05, 0.2])
    X[:, 5] = np.where(y, 1.0, -1.0) + rng.random(n) * 0.5  # completely separable
    X[:, 6] = np.where(y, rng.integers(0, 3, n), rng.integers(-3, 1, n))  # quasi: tie at 0
    X[:, 7] = 4.0  # constant
    return X, y


@pytest.mark.filterwarnings("error")
def test_logistic_matches_statsmodels_and_flags_separation(logistic_data):
    X, y = logistic_data
    res = logistic_tests(X, y)
    for j in range(5):
        x = (X[:, j] - X[:, j].mean()) / X[:, j].std()
        fit = sm.Logit(y.astype(float), sm.add_constant(x)).fit(disp=0, method="newton", tol=1e-12)
        assert res.loc[j, "intercept"] == pytest.approx(fit.params[0], abs=1e-5)
        assert res.loc[j, "coef"] == pytest.approx(fit.params[1], abs=1e-5)
        assert res.loc[j, "se"] == pytest.approx(fit.bse[1], abs=1e-5)
        assert res.loc[j, "z"] == pytest.approx(fit.tvalues[1], abs=1e-5)
        assert res.loc[j, "p_wald"] == pytest.approx(fit.pvalues[1], abs=1e-5, rel=1e-5)
        assert res.loc[j, "lr"] == pytest.approx(fit.llr, rel=1e-6)
        assert res.loc[j, "p"] == pytest.approx(fit.llr_pvalue, rel=1e-5, abs=1e-300)
    assert res["separable"].tolist() == [False] * 5 + [True, True, False]
    assert res.loc[7, "constant"]
    assert res.loc[5:, ["coef", "p_wald"]].isna().all().all() and np.isnan(res.loc[7, "p"])
    # separation: the LR test uses the likelihood's supremum, a finite chi2 (never a Wald p near 1)
    n1, n = y.sum(), len(y)
    ll0 = n1 * np.log(n1 / n) + (n - n1) * np.log((n - n1) / n)
    assert res.loc[5, "lr"] == pytest.approx(-2 * ll0)  # complete: the supremum is 0
    tied1, tied0 = int(((X[:, 6] == 0) & y).sum()), int(((X[:, 6] == 0) & ~y).sum())
    sup = tied1 * np.log(tied1 / (tied1 + tied0)) + tied0 * np.log(tied0 / (tied1 + tied0))
    assert res.loc[6, "lr"] == pytest.approx(2 * (sup - ll0))  # quasi-complete: the tie keeps its proportion
    assert 0 < res.loc[6, "p"] < 1e-10
    assert res.loc[5, "cv_auc"] == 1.0 and res.loc[5, "cv_balanced_accuracy"] == 1.0


def test_logistic_cv_matches_sklearn_cross_val_predict(logistic_data):
    X, y = logistic_data
    res = ls.logistic_tests(X, y, cv=5, seed=0)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
    for j in range(4):
        xj = X[:, [j]] - X[:, j].mean()
        proba = cross_val_predict(model, xj, y, cv=folds, method="predict_proba")[:, 1]
        pred = cross_val_predict(model, xj, y, cv=folds)
        auc = np.mean([roc_auc_score(y[te], proba[te]) for _, te in folds])
        bacc = np.mean([balanced_accuracy_score(y[te], pred[te]) for _, te in folds])
        assert res.loc[j, "cv_auc"] == pytest.approx(auc, abs=1e-12)
        assert res.loc[j, "cv_balanced_accuracy"] == pytest.approx(bacc, abs=1e-12)
    assert res.loc[0, "cv_auc"] > 0.65 and res.loc[1, "cv_auc"] > res.loc[3, "cv_auc"]
    assert "train_accuracy" in res and (res["train_accuracy"].between(0, 1)).all()


# --------------------------------------------------------------------------- corrections
def test_correct_pvalues_families():
    rng = np.random.default_rng(8)
    p = rng.random((3, 100)) ** 3
    p[1, 5] = np.nan
    layer = ls.correct_pvalues(p, method="fdr_bh", family="layer")
    for i in range(3):
        ok = ~np.isnan(p[i])
        rej, adj, _, _ = multipletests(p[i, ok], alpha=0.05, method="fdr_bh")
        np.testing.assert_allclose(layer.p_adjusted[i, ok], adj, rtol=1e-12)
        np.testing.assert_array_equal(layer.reject[i, ok], rej)
    assert np.isnan(layer.p_adjusted[1, 5]) and not layer.reject[1, 5]
    assert layer.family_sizes == {0: 100, 1: 99, 2: 100}
    assert layer.family_description.startswith("BH FDR over 99-100 neurons of each layer")

    flat, idx = p.ravel(), np.repeat([0, 1, 2], 100)
    same = ls.correct_pvalues(flat, family="layer", layer_index=idx)
    np.testing.assert_array_equal(same.p_adjusted, layer.p_adjusted.ravel())

    model = ls.correct_pvalues(flat, method="fdr_bh", family="model")
    ok = ~np.isnan(flat)
    rej, adj, _, _ = multipletests(flat[ok], alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(model.p_adjusted[ok], adj, rtol=1e-12)
    np.testing.assert_array_equal(model.reject[ok], rej)
    assert model.family_description.startswith("BH FDR over 299 neurons of the whole model")

    bonf = ls.correct_pvalues(p[0], method="bonferroni", family="model")
    np.testing.assert_allclose(bonf.p_adjusted, np.minimum(p[0] * 100, 1.0))
    assert bonf.family_description.startswith("Bonferroni over 100 neurons")


# --------------------------------------------------------------------------- replication
def test_replication_split(planted, noise):
    X, y = planted
    rep = ls.replication_split(X, y, seed=0)
    a, b = rep.halves
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(y)
    assert abs(y[a].sum() - y[b].sum()) <= 1  # stratified
    assert rep.n_significant[0] >= 3 and rep.n_significant[1] >= 3
    assert rep.jaccard > 0.5 and rep.pearson_r > 0.2
    Xn, yn = noise
    rep_noise = ls.replication_split(Xn, yn, seed=0)
    assert abs(rep_noise.pearson_r) < 0.2 and abs(rep_noise.spearman_rho) < 0.2


# --------------------------------------------------------------------------- token identity
def test_token_identity_control():
    rng = np.random.default_rng(9)
    tokens = rng.integers(0, 20, size=2000)
    lookup = rng.normal(size=20)
    X = np.column_stack([lookup[tokens], lookup[tokens] + rng.normal(size=2000) * 0.01,
                         rng.normal(size=2000), np.zeros(2000)])
    res = ls.token_identity_control(X, tokens)
    assert res.loc[0, "eta_squared"] == pytest.approx(1.0, abs=1e-12)
    assert res.loc[1, "eta_squared"] > 0.999
    assert res.loc[2, "eta_squared"] < 0.03 and abs(res.loc[2, "epsilon_squared"]) < 0.01
    f, p = stats.f_oneway(*[X[tokens == t, 2] for t in range(20)])
    assert res.loc[2, "f"] == pytest.approx(f, rel=1e-9)
    assert res.loc[2, "p"] == pytest.approx(p, rel=1e-8)
    assert res.loc[3, "constant"] and np.isnan(res.loc[3, "eta_squared"])


# --------------------------------------------------------------------------- sparse probe
@pytest.mark.filterwarnings("error")
def test_sparse_probe_finds_signal_neurons():
    rng = np.random.default_rng(10)
    n, m = 300, 150
    y = rng.permutation(np.repeat([True, False], n // 2))
    X = rng.normal(size=(n, m))
    signal = [11, 60, 127]
    X[:, signal] += 1.6 * y[:, None]
    for rank_by in ("mean_diff", "anova_f", "l1"):
        res = sparse_probe(X, y, ks=(1, 2, 4, 8), rank_by=rank_by, cv=5, seed=0)
        assert list(res.columns[:5]) == ["k", "rank_by", "f1", "mcc", "auc"]
        row = res.set_index("k").loc[4]
        assert row["auc"] > 0.95 and row["mcc"] > 0.6 and row["f1"] > 0.8
        assert set(row["neurons"][:3]) == set(signal), rank_by
        assert res["auc"].iloc[0] < row["auc"]  # more signal neurons help
    assert set(rank_neurons(X, y, "anova_f")[:3]) == set(signal)
    assert ls.sparse_probe is not None and ls.sparse_probe(X, y, ks=(2,)).shape[0] == 1


@pytest.mark.filterwarnings("error")
def test_sparse_probe_ranks_inside_folds_no_leakage():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(60, 2000)), np.repeat([True, False], 30)
    res = sparse_probe(X, y, ks=(4,), rank_by="anova_f")
    # ranking on all data first would pick lucky neurons and give AUC ~0.8+ on pure noise
    assert res["auc"].iloc[0] < 0.7
