"""Probing: how well do single neurons, or the top-k neurons of a layer, decode a binary label?

``logistic_tests`` fits one-neuron logistic regressions for all neurons at once (vectorised
Newton/IRLS) with likelihood-ratio tests and cross-validated decoding; ``sparse_probe`` ranks neurons
on training folds only (no leakage) and scores a logistic probe on the top k. With ``groups`` (the unit
of replication: word type, pair) the folds never split a unit (``StratifiedGroupKFold``). Conventions
(X, y, DataFrame layout) are those of :mod:`lamina.stats.checks`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special, stats
from sklearn.feature_selection import f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lamina.stats.checks import (
    MIN_GROUP_SIZE,
    TooFewSamplesError,
    check_activations,
    check_binary,
    is_constant,
    neuron_frame,
)

__all__ = ["logistic_tests", "sparse_probe", "rank_neurons", "cv_folds"]
_CHUNK = 256  # neurons per vectorised Newton fit


# --------------------------------------------------------------------------- one-neuron logistic
def _separable(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where a threshold on the column separates the classes (complete or quasi-complete)."""
    x0, x1 = x[~y], x[y]
    return (x0.max(0) <= x1.min(0)) | (x1.max(0) <= x0.min(0))


def _separated_loglik(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Supremum of the log-likelihood of separable columns: 0 under complete separation; under quasi-complete
    separation the samples tied at the boundary keep their own proportion of positives."""
    x0, x1 = x[~y], x[y]
    up = x0.max(0) <= x1.min(0)
    v = np.where(up, x0.max(0), x0.min(0))          # the boundary value
    at = x == v[None, :]
    n1, n0 = (at & y[:, None]).sum(0), (at & ~y[:, None]).sum(0)
    with np.errstate(all="ignore"):
        tied = n1 * np.log(n1 / (n1 + n0)) + n0 * np.log(n0 / (n1 + n0))
    return np.where((n1 > 0) & (n0 > 0), tied, 0.0)


def cv_folds(y: np.ndarray, cv: int, seed: int, groups=None):
    """Stratified shuffled folds; with `groups`, StratifiedGroupKFold (no group in two folds). Raises
    TooFewSamplesError when a class has fewer than `cv` groups."""
    if groups is None:
        return list(StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    groups = np.asarray(groups)
    for cls in (True, False):
        g = len(np.unique(groups[y == cls]))
        if g < cv:
            raise TooFewSamplesError(f"grouped {cv}-fold cross-validation needs at least {cv} units (groups) per "
                                     f"class; class {'positive' if cls else 'negative'} has {g}. Give more "
                                     "examples, or fewer --cv folds")
    folds = StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y, groups))


def _evaluate(b0, b1, x, yf):
    """Log-likelihood and [g0, g1, h00, h01, h11] (gradient, information) per column at (b0, b1)."""
    eta = b0 + b1 * x
    prob = special.expit(eta)
    ll = (yf[:, None] * eta - np.logaddexp(0.0, eta)).sum(0)
    w, resid = prob * (1 - prob), yf[:, None] - prob
    wx = w * x
    return ll, np.stack([resid.sum(0), (resid * x).sum(0), w.sum(0), wx.sum(0), (wx * x).sum(0)])


def _fit_logit_1d(x: np.ndarray, y: np.ndarray, start=None, max_iter=100, tol=1e-10):
    """Vectorised Newton-Raphson (step halving) for intercept + slope logistic fits, one per column.

    Columns must be non-separable and non-constant; ``start`` (a [2, n_columns] warm start, NaN
    for none) only changes the speed, not the maximum found. Returns b0, b1, se(b1), converged.
    """
    yf, m = y.astype(float), x.shape[1]
    b = np.zeros((2, m))
    b[0] = special.logit(yf.mean())
    if start is not None:
        b = np.where(np.isfinite(start).all(0), start, b)
    ll, terms = _evaluate(b[0], b[1], x, yf)
    converged, done = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            act = np.nonzero(~done)[0]
            if act.size == 0:
                break
            xa = x if act.size == m else x[:, act]
            g0, g1, h00, h01, h11 = terms[:, act]
            det = h00 * h11 - h01 ** 2
            step = np.stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det])
            new_ll, new_terms = _evaluate(b[0, act] + step[0], b[1, act] + step[1], xa, yf)
            for _halving in range(30):  # concave: halve until the likelihood does not drop
                worse = np.nonzero(new_ll < ll[act] - 1e-12 * np.abs(ll[act]))[0]
                if worse.size == 0:
                    break
                step[:, worse] /= 2
                new_ll[worse], new_terms[:, worse] = _evaluate(
                    b[0, act[worse]] + step[0, worse], b[1, act[worse]] + step[1, worse],
                    xa[:, worse], yf)
            b[:, act] += step
            ll[act], terms[:, act] = new_ll, new_terms
            converged[act] = np.abs(step).max(0) < tol
            done[act] = converged[act] | ~np.isfinite(new_ll)
        _, _, h00, h01, h11 = terms
        se = np.sqrt(h00 / (h00 * h11 - h01 ** 2))  # sqrt of [inverse Fisher information]_11
    return b[0], b[1], se, converged & np.isfinite(ll), ll


def _fit_columns(x: np.ndarray, y: np.ndarray, start=None) -> dict:
    """Fit a one-neuron logistic model to every column; the decision function is ``a + c * x``.

    Separable columns (no MLE) get the limit model, a threshold at the midpoint of the class
    gap; constant columns get the intercept-only model (predict the majority class).
    ``start``: optional warm start [2, n_columns] for the Newton fits.
    """
    m = x.shape[1]
    const = is_constant(x)
    sep = _separable(x, y) & ~const
    fit = ~(sep | const)
    b0, b1, se, ll = (np.full(m, np.nan) for _ in range(4))
    converged = np.zeros(m, dtype=bool)
    cols = np.nonzero(fit)[0]
    for i in range(0, cols.size, _CHUNK):  # column chunks keep the work arrays cache-sized
        chunk = cols[i:i + _CHUNK]
        b0[chunk], b1[chunk], se[chunk], converged[chunk], ll[chunk] = _fit_logit_1d(
            np.ascontiguousarray(x[:, chunk]), y, None if start is None else start[:, chunk])
    a, c = b0.copy(), b1.copy()
    a[fit & ~converged] = c[fit & ~converged] = np.nan
    if sep.any():
        ll[sep] = _separated_loglik(x[:, sep], y)
        x0, x1 = x[~y][:, sep], x[y][:, sep]
        up = x0.max(0) <= x1.min(0)  # positives lie above the gap
        mid = np.where(up, x0.max(0) + x1.min(0), x1.max(0) + x0.min(0)) / 2
        c[sep] = np.where(up, 1.0, -1.0)
        a[sep] = -c[sep] * mid
    c[const], a[const] = 0.0, (1.0 if y.mean() > 0.5 else -1.0)
    return {"b0": b0, "b1": b1, "se": se, "converged": converged, "separable": sep,
            "constant": const, "a": a, "c": c, "loglik": ll}


def _auc_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of scores for labels y (ties count 1/2, as sklearn)."""
    ranks = stats.rankdata(scores, axis=0)
    n1, n0 = y.sum(), (~y).sum()
    return (ranks[y].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def logistic_tests(X, y, cv: int = 5, seed: int = 0, groups=None) -> pd.DataFrame:
    """Per-neuron one-variable logistic regression of a binary label: likelihood-ratio test + CV decoding.

    The neuron is standardised (z-scored over all samples) before fitting, so ``coef`` is the
    change in log-odds per SD. Columns: ``intercept``, ``coef``, ``se``, ``z``, ``p_wald`` (NaN when
    ``separable`` or ``constant`` or not ``converged``); ``p`` (likelihood-ratio test against the
    intercept-only model, chi2 with 1 df: reliable near separation, where the Wald p is not; for a
    separable column the supremum of the likelihood is used, so its p is small but finite);
    ``separable`` (a threshold perfectly or quasi-perfectly separates the classes: the MLE does not
    exist); ``constant``; ``converged``; ``cv_balanced_accuracy``, ``cv_auc`` (mean over ``cv`` folds
    of held-out balanced accuracy and ROC AUC; ``cv_folds``: stratified shuffled folds, grouped by
    ``groups`` when given; on a training fold where the neuron separates the classes the model is the
    threshold at the middle of the gap); ``train_accuracy`` (in-sample, optimistic: never report it alone).
    The LR test treats samples as independent: it is an occurrence-level side test.
    """
    X = check_activations(X)
    y = check_binary(y, X.shape[0], max(cv, MIN_GROUP_SIZE), f" (cv={cv} stratified folds)")
    folds = cv_folds(y, cv, seed, groups)
    m = X.shape[1]
    constant = is_constant(X)
    xs = (X - X.mean(0)) / np.where(constant, 1.0, X.std(0))
    full = _fit_columns(xs, y)
    ok = full["converged"]
    intercept, coef, se = (np.where(ok, full[k], np.nan) for k in ("b0", "b1", "se"))
    z = coef / se
    p_wald = 2 * stats.norm.sf(np.abs(z))
    n1, n = y.sum(), len(y)
    ll0 = n1 * np.log(n1 / n) + (n - n1) * np.log((n - n1) / n)
    lr = np.where((ok | full["separable"]) & ~constant, 2 * (full["loglik"] - ll0), np.nan)
    p = stats.chi2.sf(np.maximum(lr, 0), 1)
    train_acc = ((full["a"] + full["c"] * xs > 0) == y[:, None]).mean(0)
    train_acc[~np.isfinite(full["c"])] = np.nan

    # Cross-validation. The logistic model is affine-equivariant, so z-scoring with full-data
    # statistics does not change held-out predictions (no leakage); fits use train folds only.
    bal_acc, auc = np.zeros(m), np.zeros(m)
    for tr, te in folds:
        model = _fit_columns(xs[tr], y[tr], start=np.stack([intercept, coef]))
        decision = model["a"] + model["c"] * xs[te]
        pred, yt = decision > 0, y[te]
        failed = ~np.isfinite(model["c"])
        bal_acc += np.where(failed, np.nan, (pred[yt].mean(0) + (~pred[~yt]).mean(0)) / 2)
        auc += np.where(failed, np.nan, _auc_columns(np.nan_to_num(decision), yt))
    return neuron_frame({"intercept": intercept, "coef": coef, "se": se, "z": z, "p_wald": p_wald, "p": p,
                         "lr": lr, "separable": full["separable"], "constant": constant, "converged": ok,
                         "cv_balanced_accuracy": bal_acc / cv, "cv_auc": auc / cv,
                         "train_accuracy": train_acc}, cv=cv, seed=seed, grouped=groups is not None)


# --------------------------------------------------------------------------- sparse probe
RANKINGS = ("mean_diff", "anova_f", "l1")
DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _anova_f(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", UserWarning)  # "Features ... are constant"
        f = f_classif(X, y)[0]
    return np.nan_to_num(f, nan=-np.inf)  # constant neurons rank last


def rank_neurons(X, y, rank_by: str = "mean_diff", l1_C: float = 0.1, seed: int = 0) -> np.ndarray:
    """Order neurons (best first) by how strongly they separate the two classes, for sparse probing.

    ``mean_diff``: |mean(pos) - mean(neg)| in raw activation units (favours high-variance
    neurons); ``anova_f``: one-way ANOVA F (scale-free); ``l1``: |coefficient| of an L1-penalised,
    class-balanced logistic regression on z-scored neurons (``C=l1_C``), ties (e.g. the many zero
    coefficients) broken by ANOVA F.
    """
    X = check_activations(X)
    y = check_binary(y, X.shape[0], min_per_class=1)
    if rank_by == "mean_diff":
        return np.argsort(-np.abs(X[y].mean(0) - X[~y].mean(0)), kind="stable")
    if rank_by == "anova_f":
        return np.argsort(-_anova_f(X, y), kind="stable")
    if rank_by == "l1":
        model = make_pipeline(StandardScaler(), LogisticRegression(
            l1_ratio=1.0, solver="liblinear", C=l1_C, class_weight="balanced", random_state=seed))
        coef = np.abs(model.fit(X, y).named_steps["logisticregression"].coef_[0])
        return np.lexsort((-_anova_f(X, y), -coef))
    raise ValueError(f"rank_by must be one of {RANKINGS}; got {rank_by!r}")


def sparse_probe(X, y, ks=DEFAULT_KS, rank_by: str = "mean_diff", cv: int = 5,
                 seed: int = 0, groups=None) -> pd.DataFrame:
    """Held-out F1/MCC/AUC of a class-balanced logistic probe on the top-k ranked neurons, for each k.

    For each of ``cv`` stratified shuffled folds (grouped by ``groups`` when given, see ``cv_folds``), neurons
    are ranked on the training fold only,
    a ``LogisticRegression(class_weight='balanced')`` (after z-scoring on the training fold) is
    fit on the top k, and F1 (positive class), Matthews correlation and ROC AUC are scored on the
    held-out fold. Columns: ``k``, ``rank_by``, ``f1``, ``mcc``, ``auc`` (means over folds),
    ``auc_std`` (SD over folds), ``neurons`` (the top-k neuron indices ranked on the full data,
    for reporting which neurons the probe uses). ks larger than the number of neurons are dropped.
    """
    X = check_activations(X)
    y = check_binary(y, X.shape[0], max(cv, MIN_GROUP_SIZE), f" (cv={cv} stratified folds)")
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {RANKINGS}; got {rank_by!r}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers; got {ks}")
    ks = [k for k in ks if k <= X.shape[1]]
    if not ks:
        raise ValueError(f"every k exceeds the number of neurons ({X.shape[1]})")
    scores = {k: [] for k in ks}
    for tr, te in cv_folds(y, cv, seed, groups):
        order = rank_neurons(X[tr], y[tr], rank_by, seed=seed)
        for k in ks:
            cols = order[:k]
            probe = make_pipeline(StandardScaler(), LogisticRegression(
                class_weight="balanced", max_iter=1000))
            probe.fit(X[tr][:, cols], y[tr])
            pred = probe.predict(X[te][:, cols])
            score = probe.decision_function(X[te][:, cols])
            scores[k].append((f1_score(y[te], pred, zero_division=0.0),
                              matthews_corrcoef(y[te], pred), roc_auc_score(y[te], score)))
    full_order = rank_neurons(X, y, rank_by, seed=seed)
    rows = []
    for k in ks:
        s = np.array(scores[k])
        rows.append({"k": k, "rank_by": rank_by, "f1": s[:, 0].mean(), "mcc": s[:, 1].mean(),
                     "auc": s[:, 2].mean(), "auc_std": s[:, 2].std(ddof=1),
                     "neurons": full_order[:k].tolist()})
    df = pd.DataFrame(rows)
    df.attrs.update(cv=cv, seed=seed)
    return df
