"""One layer of `lamina tune`: every per-neuron statistic of a contrast, at the design's unit of replication.

Binary labels: the primary test (cluster-robust OLS slope for word type x paragraph, the paired t for pairs,
Welch's t with `--unit occurrence`), the occurrence-level Welch t and Mann-Whitney U beside it, d and d_z,
the one-neuron logistic regression (likelihood-ratio p, CV decoding with folds grouped by the unit), the
contrast controlling for the confounds (char length, log frequency; same unit), token identity (epsilon
squared), sparse probes, and the replication split over halves of the units. Continuous labels: the
primary slope / partial correlation, the occurrence-level correlation beside it, token identity, replication.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamina.analyses.tuning.contrasts import SampleSet
from lamina.stats import (
    PrimaryDesign,
    contrast_tests,
    correlation_tests,
    logistic_tests,
    primary_test,
    replication_split,
    sparse_probe,
    token_identity_control,
)
from lamina.stats.checks import TooFewSamplesError
from lamina.stats.clustered import LabelExplainedError, cluster_ols


def confound_columns(samples: SampleSet) -> list[str]:
    """The confound columns (char length, log frequency) that vary over the samples."""
    return [c for c in ("char_len", "log_freq") if c in samples.rows and np.ptp(samples.rows[c].to_numpy(float)) > 0]


def probe_ks(ks, y, cv: int) -> list[int]:
    """The ks no larger than the smaller group's training-fold size: a probe on more neurons than examples
    of a class fits noise (and its solver crawls on separable folds)."""
    limit = max(1, int(min(y.sum(), (~y).sum()) * (cv - 1) / cv))
    return [k for k in ks if k <= limit] or [1]


def _replication(X, y, design: PrimaryDesign, seed: int) -> dict:
    try:
        rep = replication_split(X, y, seed=seed, design=design)
    except (TooFewSamplesError, LabelExplainedError):  # a half without enough units (or label variation)
        return {"replication_r": np.nan, "replication_rho": np.nan, "n_replication_undefined": X.shape[1]}
    return {"replication_r": rep.pearson_r, "replication_rho": rep.spearman_rho}


def _token_control(df: pd.DataFrame, X, samples: SampleSet) -> None:
    ids = samples.rows["token_id"].to_numpy()
    if len(np.unique(ids)) < 2:
        df["token_eta2"] = df["token_eps2"] = np.nan
        return
    tc = token_identity_control(X, ids)
    df["token_eta2"], df["token_eps2"] = tc["eta_squared"].to_numpy(), tc["epsilon_squared"].to_numpy()


def layer_binary(X, samples: SampleSet, design: PrimaryDesign, cv: int, ks, rank_by, seed: int, probes: bool,
                 groups=None) -> tuple[pd.DataFrame, list, dict]:
    """(per-neuron table, probe rows, layer extras) of one layer for a binary contrast."""
    y = samples.y
    extra_notes = {}
    ct = contrast_tests(X, y, paired=design.paired)
    df = ct[["mean_pos", "mean_neg", "diff"]].copy()
    prim = primary_test(X, y, design)
    df["t"], df["p"] = prim["t"].to_numpy(), prim["p"].to_numpy()
    if "se" in prim:  # the regression test (clustered, or with fixed effects)
        df["se"], df["df"] = prim["se"].to_numpy(), prim["df"].to_numpy()
        df["t_occurrence"], df["p_occurrence"] = ct["t"].to_numpy(), ct["p"].to_numpy()
    df["mwu_u"], df["p_mwu"] = ct["u"].to_numpy(), ct["p_mwu"].to_numpy()
    df["cohens_d"], df["cohens_dz"], df["constant"] = ct["cohens_d"], ct["cohens_dz"], ct["constant"]
    lt = logistic_tests(X, y, cv=cv, seed=seed, groups=groups)
    df["separable"], df["converged"] = lt["separable"], lt["converged"]
    df["cv_balanced_accuracy"], df["cv_auc"] = lt["cv_balanced_accuracy"], lt["cv_auc"]
    if not design.paired:  # a logistic model of the label ignores the pairing: no p for pairs
        df["logit_coef"], df["logit_se"] = lt["coef"], lt["se"]
        df["logit_p"], df["logit_p_wald"] = lt["p"], lt["p_wald"]
        C = samples.rows[confound_columns(samples)].to_numpy(float) if confound_columns(samples) else None
        if C is not None:
            try:
                if design.regression:  # the primary test's regression, plus the confounds
                    both = C if design.control is None else np.column_stack([C, design.control])
                    pc = cluster_ols(X, y.astype(float), list(design.clusters) or [np.arange(len(y))], both,
                                     design.vcov)
                    df["controlled_r"], df["controlled_p"] = pc["partial_r"], pc["p"]
                else:
                    pc = correlation_tests(X, y.astype(float), control=C)
                    df["controlled_r"], df["controlled_p"] = pc["partial_r"], pc["partial_p"]
            except LabelExplainedError:  # the label is explained by the confounds: nothing left to test
                df["controlled_r"] = df["controlled_p"] = np.nan
                extra_notes["n_controlled_undefined"] = X.shape[1]
    _token_control(df, X, samples)
    probe_rows = []
    if probes:
        for r in rank_by:
            p = sparse_probe(X, y, ks=probe_ks(ks, y, cv), rank_by=r, cv=cv, seed=seed, groups=groups)
            probe_rows += p.to_dict(orient="records")
    return df, probe_rows, {**_replication(X, y, design, seed), **extra_notes}


def layer_continuous(X, samples: SampleSet, design: PrimaryDesign, seed: int) -> tuple[pd.DataFrame, list, dict]:
    """(per-neuron table, [], layer extras) of one layer for a continuous label."""
    z = samples.y
    prim = primary_test(X, z, design)
    occ = correlation_tests(X, z, control=design.control)
    df = pd.DataFrame({"r": occ["r"].to_numpy()})
    if design.control is not None:
        df["partial_r"] = occ["partial_r"].to_numpy()
    df["t"], df["p"] = prim["t"].to_numpy(), prim["p"].to_numpy()
    if "se" in prim:
        df["slope"], df["se"], df["df"] = prim["coef"].to_numpy(), prim["se"].to_numpy(), prim["df"].to_numpy()
        df["p_occurrence"] = (occ["partial_p"] if design.control is not None else occ["p"]).to_numpy()
    df["constant"] = occ["constant"].to_numpy()
    _token_control(df, X, samples)
    return df, [], _replication(X, z, design, seed)


def effect(df: pd.DataFrame, samples: SampleSet) -> np.ndarray:
    """The signed effect that orders neurons: t (binary), or the (partial) correlation."""
    if samples.kind == "binary":
        return df["t"].to_numpy()
    return df["partial_r" if samples.control else "r"].to_numpy()


def best_order(d: pd.DataFrame, samples: SampleSet) -> np.ndarray:
    """Neurons by primary p, ties by |effect|."""
    return np.lexsort((-np.abs(np.nan_to_num(effect(d, samples))), np.nan_to_num(d["p"].to_numpy(), nan=2.0)))


def top_table(neurons: pd.DataFrame, samples: SampleSet, n: int) -> pd.DataFrame:
    """The `n` strongest neurons over all layers, with their main statistics."""
    order = best_order(neurons, samples)
    cols = ["layer", "neuron", "name", "q", "p_bonferroni", "t", "p"]
    cols += (["cohens_d", "cohens_dz", "diff", "t_occurrence", "p_occurrence", "p_mwu", "logit_coef", "logit_p",
              "separable", "cv_balanced_accuracy", "cv_auc", "controlled_r", "controlled_p"]
             if samples.kind == "binary" else ["r", "partial_r", "slope", "p_occurrence"])
    cols += ["token_eps2"]
    return neurons.iloc[order[:n]][[c for c in cols if c in neurons]].reset_index(drop=True)
