"""Neuron tuning to a contrast, layer by layer: which neurons of a site kind respond, and how many.

One contrast flows like this:
    SampleSet (contrasts/): texts + one row per sample (text, token positions read, label, and its units:
        word type, paragraph, document, pair)
    ──► design_for (tuning_design.py): the primary test at the unit of replication (word type x paragraph:
        two-way cluster-robust OLS; pairs: paired t; `unit="occurrence"`: every row independent)
    ──► the samples' activations, every requested layer in one pass per batch, from an activation source
        (analyses/sources/: the model, `ModelSource`, or an activation store, `StoreSource`)
    ──► per layer (tuning_layer.py): the primary test and the side tests
    ──► BH FDR and Bonferroni over the stated family (each layer, or the whole model)
    ──► the permutation null at the same unit (labels permuted among word types, signs flipped within
        pairs; lamina.stats.nulls), per layer and in total; the same null's reference for the "best"
        decoding figures (best single-neuron CV accuracy, best probe AUC)
    ──► tidy tables (one row per neuron; one row per layer) + token heatmap data for the top neurons
The settings are one `TuneSettings` (tune_settings.py), written to the results as given.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lamina.analyses.sources import as_source
from lamina.analyses.tuning.contrasts import SampleSet
from lamina.analyses.tuning.design import (
    check_sizes,
    cv_groups,
    describe_test,
    design_for,
    drop_first_token,
    few_levels_notes,
    run_settings,
)
from lamina.analyses.tuning.examples import token_heatmaps
from lamina.analyses.tuning.layer import best_order, layer_binary, layer_continuous, probe_ks, top_table
from lamina.analyses.tuning.settings import PROBE_KS, TuneSettings
from lamina.stats import (
    PrimaryDesign,
    TooFewSamplesError,
    correct_pvalues,
    label_draws,
    logistic_tests,
    null_band,
    null_pvalues,
    sparse_probe,
)
from lamina.stats.nulls import distinct_labellings, null_counts, permutation_pvalues, permutations_for

SINK_KINDS = ("resid_pre", "resid_mid", "resid_post")  # sites where the first token's state is an outlier
__all__ = ["TuningResult", "TuneSettings", "tune", "design_for", "probe_ks",
           "PROBE_KS", "drop_first_token", "check_sizes", "describe_test"]


@dataclass
class TuningResult:
    neurons: pd.DataFrame       # one row per (layer, neuron): every statistic, q-values, significance
    laminar: pd.DataFrame       # one row per layer: counts significant, null band, best accuracy, top neurons
    probes: pd.DataFrame        # layer, rank_by, k, f1, mcc, auc, auc_std, neurons (binary contrasts)
    null_counts: np.ndarray     # [n_permutations, n_layers]: significant neurons under null labellings
    top: pd.DataFrame           # the strongest neurons over all layers
    samples: SampleSet
    examples: list = field(default_factory=list)    # heatmap data: top neurons over sample texts
    lessons: dict = field(default_factory=dict)     # token-length lessons (histograms, r quantiles)
    settings: dict = field(default_factory=dict)    # contrast, test, unit, family, correction, statement, sizes
    controls: pd.DataFrame | None = None            # negative controls per layer (tuning_controls.py)

    def to_json(self) -> dict:
        out = {"settings": self.settings, "layers": self.laminar.to_dict(orient="records"),
               "top_neurons": self.top.to_dict(orient="records")}
        if self.controls is not None:
            out["controls"] = self.controls.to_dict(orient="records")
        return out


# --------------------------------------------------------------------------- the analysis
def tune(lm, samples: SampleSet, settings: TuneSettings | None = None, *, progress: bool = True,
         **options) -> TuningResult:
    """Per-neuron tuning of a site kind's neurons to a contrast in every requested layer (module docstring).

    `lm`: a LanguageModel, an ActivationStore, or an activation source (`analyses.sources`: `StoreSource` reads
    a store instead of running the model). `settings`: a `TuneSettings`, or its fields by keyword
    (`tune(lm, samples, site="q", layers="3-5")`; with both, the keywords replace those fields). `unit`: None
    (the samples' own units: word type x paragraph for corpus contrasts, the pair for pairs), "occurrence", or
    unit column names.
    """
    t0 = time.perf_counter()
    ts = dataclasses.replace(settings, **options) if settings is not None else TuneSettings(**options)
    site, cv, seed = ts.site, ts.cv, ts.seed
    source = as_source(lm, "tune")
    layer_ids, sites = source.site_names(site, ts.layers)  # SiteError for kinds this model (store) lacks
    if site in SINK_KINDS and not ts.keep_first_token:
        samples = drop_first_token(samples)
    design = design_for(samples, ts.unit, ts.control)
    few = few_levels_notes(samples, design)  # one line each: which factor sets the df, and what to do
    if few:  # in the notes: printed under the CLI's table, and in tuning.json
        samples = dataclasses.replace(samples, notes=samples.notes + few)
    check_sizes(samples, cv, design)
    groups = cv_groups(samples, design)
    acts = source.activations(samples, sites, ts.batch_size, progress)
    t_capture = time.perf_counter() - t0

    frames, probe_rows, extras = [], [], []
    for L, s in tqdm(list(zip(layer_ids, sites)), desc=f"tune {site}", unit="layer", disable=not progress):
        X = acts[s]
        if samples.kind == "binary":
            df, pr, extra = layer_binary(X, samples, design, cv, ts.ks, ts.rank_by, seed, ts.probes, groups)
        else:
            df, pr, extra = layer_continuous(X, samples, design, seed)
        df.insert(0, "neuron", np.arange(len(df)))
        df.insert(0, "layer", L)
        frames.append(df.reset_index(drop=True))
        probe_rows += [{"layer": L, **r} for r in pr]
        extras.append(extra)
    if ts.p == "permutation":  # randomization inference at the unit: each neuron's p among null labellings
        randomization = _permutation_p(acts, sites, frames, samples, design, ts)
        if "note" in randomization:  # fewer distinct labellings than draws: the smallest p is bounded
            samples = dataclasses.replace(samples, notes=samples.notes + [randomization["note"]])
    neurons = pd.concat(frames, ignore_index=True)
    neurons.insert(2, "name", [f"{site}.{L}:{i}" for L, i in zip(neurons["layer"], neurons["neuron"])])
    bh, bonf = _correct(neurons, ts.fdr_family, ts.alpha)

    # the permutation null of the count of significant neurons (BH, same family), at the design's unit
    permutations, n_refs = ts.permutations, ts.reference_permutations
    draws = label_draws(samples.y, design, max(permutations, n_refs), seed)
    P = [null_pvalues(acts[s][:, f["p"].notna().to_numpy()], samples.y, design, draws[:permutations])
         for s, f in zip(sites, frames)] if permutations else []
    null, failed = null_counts(P, ts.fdr_family, ts.alpha, "fdr_bh") if P else (np.zeros((0, len(sites)), int), 0)
    refs = (_best_references(acts, sites, samples, design, draws[:n_refs], ts, groups)
            if samples.kind == "binary" and n_refs else {})
    failures = {"null_draws_failed": failed,
                "reference_draws_failed": sum(r["failed"] for r in refs.values())}
    _report_failures(failures, permutations, n_refs * len(refs))
    laminar = _laminar(neurons, probe_rows, extras, null, layer_ids, samples, site, ts.top_n, refs)
    top = top_table(neurons, samples, ts.top_n)
    lessons = {}
    if samples.contrast == "token-length":
        from lamina.analyses.tuning.context_lessons import length_lessons

        lessons = length_lessons({L: acts[s] for L, s in zip(layer_ids, sites)}, samples.rows["char_len"],
                                 neurons)
    examples = token_heatmaps(source, samples, laminar, acts, site, ts.n_examples) if ts.n_examples else []
    del acts
    stated = run_settings(source, samples, design, ts, layer_ids, bh, bonf, null, laminar)
    stated.update(failures)
    if ts.p == "permutation":
        stated["randomization"] = randomization
        stated["statement"] += (f" P-values: randomization p at the unit ({randomization['draws_per_layer']} null "
                                "labellings per layer), the analytic p kept as p_analytic.")
    stated["seconds"] = {"capture": round(t_capture, 1), "total": round(time.perf_counter() - t0, 1)}
    for table in (laminar, top):  # every output states its test, unit and family
        table["test"], table["unit"], table["family"] = stated["test"], stated["unit"], stated["family_description"]
    return TuningResult(neurons, laminar, pd.DataFrame(probe_rows), null, top, samples, examples, lessons, stated)


def _correct(neurons: pd.DataFrame, fdr_family: str, alpha: float):
    layer = neurons["layer"].to_numpy()
    p = neurons["p"].to_numpy()
    bh = correct_pvalues(p, "fdr_bh", fdr_family, layer, alpha)
    bonf = correct_pvalues(p, "bonferroni", fdr_family, layer, alpha)
    neurons["q"], neurons["significant"] = bh.p_adjusted, bh.reject
    neurons["p_bonferroni"], neurons["significant_bonferroni"] = bonf.p_adjusted, bonf.reject
    for col, qcol in (("logit_p", "logit_q"), ("p_mwu", "q_mwu"), ("controlled_p", "controlled_q"),
                      ("p_occurrence", "q_occurrence")):
        if col in neurons and neurons[col].notna().any():  # the same family and method for the side tests
            neurons[qcol] = correct_pvalues(neurons[col].to_numpy(), "fdr_bh", fdr_family, layer, alpha).p_adjusted
    if "controlled_q" in neurons:
        neurons["significant_controlled"] = neurons["controlled_q"] < alpha
    if "q_occurrence" in neurons:
        neurons["significant_occurrence"] = neurons["q_occurrence"] < alpha
    neurons["family"] = "each layer" if fdr_family == "layer" else "whole model"
    return bh, bonf


def _permutation_p(acts, sites, frames, samples: SampleSet, design: PrimaryDesign, ts: TuneSettings) -> dict:
    """Replace each frame's primary p by its randomization p at the unit (the analytic p kept as
    `p_analytic`), with enough draws for BH's first threshold over the family (`permutations_for`)."""
    tested = [int(f["p"].notna().sum()) for f in frames]
    m = max(tested) if ts.fdr_family == "layer" else sum(tested)
    n = permutations_for(max(m, 1), ts.alpha)
    failed = 0
    for s, f in zip(sites, frames):
        res = permutation_pvalues(acts[s], samples.y, design, n, ts.seed + 7919)  # draws apart from the count null's
        f["p_analytic"] = f["p"].to_numpy()
        f["p"] = res.p
        failed += res.n_failed
    labellings = distinct_labellings(samples.y, design)
    info = {"p": "permutation", "draws_per_layer": n, "failed_draws": failed, "distinct_labellings": labellings,
            "smallest_p": 1 / (n + 1)}
    if labellings < n:
        info["note"] = (f"the design has only {labellings:.0f} distinct labellings at its unit, fewer than the "
                        f"{n} draws: the smallest p it can give is about {1 / labellings:.2g}")
    return info


def _report_failures(failures: dict, n_null: int, n_refs: int) -> None:
    """One stderr line when null draws failed (counted in the results, never dropped silently)."""
    if failures["null_draws_failed"] or failures["reference_draws_failed"]:
        sys.stderr.write(f"note: {failures['null_draws_failed']} of {n_null} null draws and "
                         f"{failures['reference_draws_failed']} of {n_refs} reference draws could not be tested "
                         "(the labelling left too few units per group); the null uses the rest\n")


def _null_labels(samples: SampleSet, design: PrimaryDesign, draw: np.ndarray) -> np.ndarray:
    """A null draw as a boolean label per row (a sign flip swaps the two rows of a pair)."""
    if not design.paired:
        return draw > 0.5
    y = samples.y.copy()
    pos, neg = np.nonzero(y)[0], np.nonzero(~y)[0]
    flip = draw < 0
    y[pos[flip]], y[neg[flip]] = False, True
    return y


def _best_references(acts, sites, samples, design, draws, ts: TuneSettings, groups) -> dict:
    """Per layer: the best single-neuron CV balanced accuracy (and best probe AUC) under null labellings."""
    cv, seed = ts.cv, ts.seed
    out = {}
    for s in sites:
        X, acc, auc, failed = acts[s], [], [], 0
        for d in draws:
            y = _null_labels(samples, design, d)
            try:
                probe = logistic_tests(X, y, cv=cv, seed=seed, groups=groups)
                acc.append(float(np.nanmax(probe["cv_balanced_accuracy"])))
                if ts.probes:
                    pr = sparse_probe(X, y, ks=probe_ks(ts.ks, y, cv), rank_by=ts.rank_by[0], cv=cv, seed=seed,
                                      groups=groups)
                    auc.append(float(pr["auc"].max()))
            except TooFewSamplesError:  # the labelling left a fold without units of a class: counted
                failed += 1
        out[s] = {"acc": np.array(acc), "auc": np.array(auc), "failed": failed}
    return out


def _laminar(neurons, probe_rows, extras, null, layer_ids, samples, site, top_n, refs) -> pd.DataFrame:
    probes = pd.DataFrame(probe_rows)
    rows = []
    for j, L in enumerate(layer_ids):
        d = neurons[neurons["layer"] == L]
        n = len(d)
        order = best_order(d, samples)
        row = {"layer": L, "site": f"{site}.{L}", "n_neurons": n, "n_tested": int(d["p"].notna().sum()),
               "n_significant": int(d["significant"].sum()), "fraction_significant": d["significant"].mean(),
               "n_significant_bonferroni": int(d["significant_bonferroni"].sum()),
               "fraction_significant_bonferroni": d["significant_bonferroni"].mean()}
        if "significant_occurrence" in d:
            row["n_significant_occurrence"] = int(d["significant_occurrence"].sum())
        if len(null):
            b = null_band(null[:, j], row["n_significant"])
            row.update(null_mean=b["mean"] / n, null_low=b["low"] / n, null_high=b["high"] / n,
                       null_count_high=b["high"], permutation_p=b["p_value"])
        best = int(d["neuron"].iat[order[0]])
        if samples.kind == "binary":
            row.update(best_neuron=best, best_t=float(d["t"].iat[order[0]]),
                       best_cohens_d=float(np.nanmax(np.abs(d["cohens_d"]))) if d["cohens_d"].notna().any() else np.nan,
                       best_cv_balanced_accuracy=float(d["cv_balanced_accuracy"].max()),
                       best_cv_auc=float(d["cv_auc"].max()), n_separable=int(d["separable"].sum()))
            ref = refs.get(f"{site}.{L}")
            if ref is not None and ref["acc"].size:
                row.update(best_cv_balanced_accuracy_null_mean=float(ref["acc"].mean()),
                           best_cv_balanced_accuracy_null_max=float(ref["acc"].max()))
            if "significant_controlled" in d:
                row["n_significant_controlled"] = int(d["significant_controlled"].sum())
            pl = probes[probes["layer"] == L] if len(probes) else probes
            if len(pl):
                b = pl.loc[pl["auc"].idxmax()]
                row.update(probe_best_auc=float(b["auc"]), probe_best_k=int(b["k"]), probe_best_rank_by=b["rank_by"],
                           probe_best_f1=float(b["f1"]), probe_best_mcc=float(b["mcc"]))
                k1 = pl[pl["k"] == 1]
                row["probe_k1_auc"] = float(k1["auc"].max()) if len(k1) else np.nan
                if ref is not None and ref["auc"].size:
                    row.update(probe_best_auc_null_mean=float(ref["auc"].mean()),
                               probe_best_auc_null_max=float(ref["auc"].max()))
        else:
            col = "partial_r" if samples.control else "r"
            row.update(best_neuron=best, best_r=float(d[col].iat[order[0]]),
                       median_abs_r=float(np.nanmedian(np.abs(d[col]))))
        row["token_eps2_top"] = float(np.nanmedian(d["token_eps2"].to_numpy()[order[:top_n]])) \
            if d["token_eps2"].notna().any() else np.nan
        row.update(extras[j])
        row["top_neurons"] = " ".join(map(str, d["neuron"].to_numpy()[order[:top_n]]))
        rows.append(row)
    return pd.DataFrame(rows)
