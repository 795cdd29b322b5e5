"""Neuron tuning to a contrast, layer by layer: which neurons of a site kind respond, and how many.

One contrast flows like this:
    SampleSet (contrasts.py): texts + one row per sample (text, token positions read, label, and its units:
        word type, paragraph, document, pair)
    ──► design_for: the primary test at the unit of replication (word type x paragraph: two-way
        cluster-robust OLS; pairs: paired t; `unit="occurrence"`: every row independent, Welch / Pearson)
    ──► gather_activations (sample_activations.py): every requested layer captured in one pass per batch
    ──► per layer (tuning_layer.py): the primary test and the side tests
    ──► BH FDR and Bonferroni over the stated family (each layer, or the whole model)
    ──► the permutation null at the same unit (labels permuted among word types, signs flipped within
        pairs; lamina.stats.nulls), per layer and in total; the same null's reference for the "best"
        decoding figures (best single-neuron CV accuracy, best probe AUC)
    ──► tidy tables (one row per neuron; one row per layer) + token heatmap data for the top neurons
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lamina.analyses.contrasts import SampleSet
from lamina.analyses.sample_activations import gather_activations, parse_layers, samples_source
from lamina.analyses.tuning_examples import token_heatmaps
from lamina.analyses.tuning_layer import (PROBE_KS, best_order, confound_columns, layer_binary,
                                          layer_continuous, probe_ks, top_table)
from lamina import validate
from lamina.errors import InputError
from lamina.stats import (MIN_GROUP_SIZE, PrimaryDesign, TooFewSamplesError, correct_pvalues, count_per_layer,
                          label_draws, logistic_tests, null_band, null_pvalues, sparse_probe)
from lamina.stats.probes import RANKINGS

TUNE_KINDS = ("mlp_post", "mlp_pre", "mlp_out", "attn_out", "resid_pre", "resid_mid", "resid_post", "q", "k", "v")
SINK_KINDS = ("resid_pre", "resid_mid", "resid_post")  # sites where the first token's state is an outlier
FAMILIES = ("layer", "model")
__all__ = ["TuningResult", "tune", "design_for", "parse_layers", "gather_activations", "probe_ks", "PROBE_KS",
           "drop_first_token", "check_sizes", "describe_test"]


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


# --------------------------------------------------------------------------- design
def design_for(samples: SampleSet, unit=None) -> PrimaryDesign:
    """The primary test's design: the samples' own units (None / "default"), "occurrence" (every row
    independent), or one or two row columns (a name, "a,b", or a list)."""
    if samples.paired:
        if unit not in (None, "default", "pair", ("pair",), ["pair"]):
            raise InputError(f"{samples.contrast} is a paired design: its unit is the pair (paired t); "
                             "--unit / --unit-column do not apply")
        return PrimaryDesign(samples.kind, paired=True, unit_names=("pair",))
    if unit in (None, "default"):
        names = tuple(samples.units)
    elif unit == "occurrence":
        names = ()
    else:
        names = tuple(u.strip() for u in unit.split(",")) if isinstance(unit, str) else tuple(unit)
    if len(names) > 2:
        raise InputError(f"give at most two unit columns; got {', '.join(names)}")
    rows = samples.rows
    for c in names:
        if c not in rows:
            raise InputError(f"unknown --unit-column '{c}'; the samples have {', '.join(map(str, rows.columns))}")
        if rows[c].nunique() < 2:
            raise InputError(f"unit '{c}' has a single level over the {len(rows)} samples; a test with it as the "
                             "unit needs at least 2 (choose another --unit-column, or --unit occurrence)")
    control = rows[samples.control].to_numpy(float) if samples.kind == "continuous" and samples.control else None
    return PrimaryDesign(samples.kind, False, names, tuple(rows[c].to_numpy() for c in names), control)


def cv_groups(samples: SampleSet, design: PrimaryDesign):
    """The unit the CV folds never split: the pair, the first unit, or None (independent rows)."""
    if design.paired:
        return samples.rows["pair"].to_numpy()
    return design.clusters[0] if design.clusters else None


def drop_first_token(samples: SampleSet) -> SampleSet:
    """The samples without those that read position 0 (the attention sink); pairs are dropped whole."""
    first = samples.rows["positions"].map(lambda ps: 0 in ps).to_numpy()
    if not first.any():
        return samples
    if samples.paired:
        first = samples.rows["pair"].isin(samples.rows.loc[first, "pair"]).to_numpy()
    rows = samples.rows[~first].reset_index(drop=True)
    what = "pairs" if samples.paired else "samples"
    n = int(first.sum()) // (2 if samples.paired else 1)
    note = (f"{n} {what} that read position 0 (the first token, an attention sink whose resid state is an "
            "outlier) are left out; keep them with --keep-first-token")
    return dataclasses.replace(samples, rows=rows, notes=samples.notes + [note])


def required_per_group(samples: SampleSet, cv: int, replication: bool = True) -> tuple[int, str]:
    """The fewest samples per group (pairs when paired; all samples for continuous) the analysis needs."""
    if samples.kind == "continuous":
        k = len(samples.control)
        need = [(3 + k, "a partial correlation" if k else "a correlation")]
        if replication:
            need.append((2 * (3 + k), "the replication split (two halves)"))
    else:
        need = [(MIN_GROUP_SIZE, "the t-test"), (max(cv, MIN_GROUP_SIZE), f"{cv}-fold cross-validated logistic "
                                                                       "regression and probes")]
        if replication:
            need.append((2 * MIN_GROUP_SIZE, "the replication split (3 per group in each half)"))
    return max(need)


def check_sizes(samples: SampleSet, cv: int, design: PrimaryDesign | None = None, replication: bool = True) -> None:
    """Raise TooFewSamplesError naming the group, its size and the minimum the requested tests need
    (samples per group, and units per group for folds grouped by the unit)."""
    need, why = required_per_group(samples, cv, replication)
    for name, n in samples.group_sizes().items():
        if n < need:
            unit = "pairs" if samples.paired else "samples"
            raise TooFewSamplesError(
                f"{samples.contrast}: group '{name}' has {n} {unit}; {why} needs at least {need} per group. "
                "Give more examples" + (", or fewer --cv folds" if "fold" in why else ""))
    if samples.kind == "binary" and design is not None and design.clusters:
        y, units = samples.y, pd.Series(design.clusters[0])
        for name, mask in zip(samples.groups, (y, ~y)):
            g = units[mask].nunique()
            if g < cv:
                raise TooFewSamplesError(
                    f"{samples.contrast}: group '{name}' has {g} distinct {design.unit_names[0]} levels; "
                    f"{cv}-fold cross-validation grouped by {design.unit_names[0]} needs at least {cv} per group. "
                    "Give more examples, or fewer --cv folds")


# --------------------------------------------------------------------------- the analysis
def tune(lm, samples: SampleSet, site: str = "mlp_post", layers=None, permutations: int = 100,
         fdr_family: str = "layer", alpha: float = 0.05, cv: int = 5, ks=PROBE_KS, rank_by=RANKINGS,
         probes: bool = True, top_n: int = 10, n_examples: int = 4, batch_size: int = 8, seed: int = 0,
         progress: bool = True, unit=None, keep_first_token: bool = False,
         reference_permutations: int = 5) -> TuningResult:
    """Per-neuron tuning of `site` neurons to a contrast in every requested layer (see module docstring).

    `unit`: None (the samples' own units: word type x paragraph for corpus contrasts, the pair for pairs),
    "occurrence", or unit column names. `reference_permutations`: null labellings for the reference of the
    best single-neuron CV accuracy and best probe AUC (0: none). `lm`: a LanguageModel, or a samples source
    (`stored_samples.StoredSamples` reads a store instead of running the model).
    """
    t0 = time.perf_counter()
    _validate(site, fdr_family, permutations, cv, rank_by, alpha, reference_permutations)
    source = samples_source(lm)
    layer_ids, sites = source.site_names(site, layers)  # SiteError for kinds this model (store) lacks
    if site in SINK_KINDS and not keep_first_token:
        samples = drop_first_token(samples)
    design = design_for(samples, unit)
    check_sizes(samples, cv, design)
    groups = cv_groups(samples, design)
    acts = source.activations(samples, sites, batch_size, progress)
    t_capture = time.perf_counter() - t0

    frames, probe_rows, extras = [], [], []
    for L, s in tqdm(list(zip(layer_ids, sites)), desc=f"tune {site}", unit="layer", disable=not progress):
        X = acts[s]
        if samples.kind == "binary":
            df, pr, extra = layer_binary(X, samples, design, cv, ks, rank_by, seed, probes, groups)
        else:
            df, pr, extra = layer_continuous(X, samples, design, seed)
        df.insert(0, "neuron", np.arange(len(df)))
        df.insert(0, "layer", L)
        frames.append(df.reset_index(drop=True))
        probe_rows += [{"layer": L, **r} for r in pr]
        extras.append(extra)
    neurons = pd.concat(frames, ignore_index=True)
    neurons.insert(2, "name", [f"{site}.{L}:{i}" for L, i in zip(neurons["layer"], neurons["neuron"])])
    bh, bonf = _correct(neurons, fdr_family, alpha)

    # the permutation null of the count of significant neurons (BH, same family), at the design's unit
    null = np.zeros((permutations, len(layer_ids)), dtype=int)
    draws = label_draws(samples.y, design, max(permutations, reference_permutations), seed)
    if permutations:
        P = []
        for s, f in zip(sites, frames):
            keep = f["p"].notna().to_numpy()
            P.append(null_pvalues(acts[s][:, keep], samples.y, design, draws[:permutations]))
        for i in range(permutations):
            null[i] = count_per_layer([np.nan_to_num(Pl[i], nan=1.0) for Pl in P], fdr_family, alpha, "fdr_bh")
    refs = (_best_references(acts, sites, samples, design, draws[:reference_permutations], cv, ks, rank_by, probes,
                             seed, groups) if samples.kind == "binary" and reference_permutations else {})
    laminar = _laminar(neurons, probe_rows, extras, null, layer_ids, samples, site, top_n, refs)
    top = top_table(neurons, samples, top_n)
    lessons = {}
    if samples.contrast == "token-length":
        from lamina.analyses.context_lessons import length_lessons

        lessons = length_lessons({L: acts[s] for L, s in zip(layer_ids, sites)}, samples.rows["char_len"],
                                 neurons)
    examples = token_heatmaps(source, samples, laminar, acts, site, n_examples) if n_examples else []
    del acts
    settings = _settings(source, samples, design, site, layer_ids, bh, bonf, permutations, fdr_family, alpha, cv, ks,
                         rank_by, probes, null, laminar, seed, reference_permutations)
    settings["seconds"] = {"capture": round(t_capture, 1), "total": round(time.perf_counter() - t0, 1)}
    for table in (laminar, top):  # every output states its test, unit and family
        table["test"], table["unit"], table["family"] = settings["test"], settings["unit"], settings["family_description"]
    return TuningResult(neurons, laminar, pd.DataFrame(probe_rows), null, top, samples, examples, lessons, settings)


def _validate(site, fdr_family, permutations, cv, rank_by, alpha, reference_permutations) -> None:
    if site not in TUNE_KINDS:
        raise InputError(f"unknown --site '{site}'; choose one of {', '.join(TUNE_KINDS)}")
    if fdr_family not in FAMILIES:
        raise InputError(f"unknown --fdr-family '{fdr_family}'; choose layer or model")
    if permutations < 0 or reference_permutations < 0:
        raise InputError("--permutations and --reference-permutations must be 0 or more")
    if cv < 2:
        raise InputError("--cv must be at least 2 folds")
    validate.fraction("alpha", alpha)
    bad = [r for r in rank_by if r not in RANKINGS]
    if bad:
        raise InputError(f"unknown ranking '{bad[0]}'; choose from {', '.join(RANKINGS)}")


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


def _null_labels(samples: SampleSet, design: PrimaryDesign, draw: np.ndarray) -> np.ndarray:
    """A null draw as a boolean label per row (a sign flip swaps the two rows of a pair)."""
    if not design.paired:
        return draw > 0.5
    y = samples.y.copy()
    pos, neg = np.nonzero(y)[0], np.nonzero(~y)[0]
    flip = draw < 0
    y[pos[flip]], y[neg[flip]] = False, True
    return y


def _best_references(acts, sites, samples, design, draws, cv, ks, rank_by, probes, seed, groups) -> dict:
    """Per layer: the best single-neuron CV balanced accuracy (and best probe AUC) under null labellings."""
    out = {}
    for s in sites:
        X, acc, auc = acts[s], [], []
        for d in draws:
            y = _null_labels(samples, design, d)
            try:
                acc.append(float(np.nanmax(logistic_tests(X, y, cv=cv, seed=seed, groups=groups)["cv_balanced_accuracy"])))
                if probes:
                    pr = sparse_probe(X, y, ks=probe_ks(ks, y, cv), rank_by=rank_by[0], cv=cv, seed=seed, groups=groups)
                    auc.append(float(pr["auc"].max()))
            except (TooFewSamplesError, ValueError):
                continue
        out[s] = {"acc": np.array(acc), "auc": np.array(auc)}
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


def describe_test(samples: SampleSet, alpha: float, design: PrimaryDesign | None = None) -> str:
    """The primary test in one sentence, with its unit."""
    design = design or design_for(samples)
    ctrl = " and ".join(c.replace("_", " ") for c in samples.control)
    if design.level == "clustered":
        what = (f"OLS slope of each neuron on {samples.label_name}" + (f", controlling for {ctrl}" if ctrl else "")
                if samples.kind == "continuous" else
                f"OLS of each neuron on the label {samples.groups[0]} vs {samples.groups[1]} (the difference in means)")
        way = "two-way" if len(design.unit_names) == 2 else "one-way"
        return (f"{what}, with {way} cluster-robust standard errors by {' and '.join(design.unit_names)} "
                "(CRV1, Cameron-Gelbach-Miller, small-sample corrected), two-sided t with G-1 df "
                "(G: the smaller cluster count)")
    if samples.kind == "continuous":
        if samples.control:
            return (f"occurrence-level Pearson partial correlation of each neuron with {samples.label_name}, "
                    f"controlling for {ctrl} (two-sided t test, n-{2 + len(samples.control)} df; every sample "
                    "treated as independent)")
        return (f"occurrence-level Pearson correlation of each neuron with {samples.label_name} (two-sided t test, "
                "n-2 df; every sample treated as independent)")
    a, b = samples.groups
    if samples.paired:
        return (f"paired t-test (two-sided) of {a} vs {b}: row i of {a} paired with row i of {b}, the pair is the "
                "unit; Mann-Whitney U, the logistic p and the controlled test are not used for pairs")
    return (f"occurrence-level Welch's t-test (two-sided, unequal variances) of {a} vs {b}, every sample treated "
            "as independent; Mann-Whitney U reported beside it")


def _settings(source, samples, design, site, layer_ids, bh, bonf, permutations, fdr_family, alpha, cv, ks, rank_by,
              probes, null, laminar, seed, reference_permutations) -> dict:
    test = describe_test(samples, alpha, design)
    width = int(laminar["n_neurons"].iat[0])
    family = (f"each layer ({width} {site} neurons per layer, {len(layer_ids)} layers)" if fdr_family == "layer"
              else f"the whole model ({width * len(layer_ids)} {site} neurons over {len(layer_ids)} layers)")
    correction = f"Benjamini-Hochberg FDR q < {alpha:g} (primary) and Bonferroni p x m < {alpha:g}"
    total = int(laminar["n_significant"].sum())
    null_unit = {"paired": "sign flips within pairs", "occurrence": "labels permuted over samples",
                 "clustered": f"labels permuted among {design.unit_names[0] if design.clusters else ''} levels "
                              "(each level keeps one label: a binary label's majority, a continuous label's mean)"}
    s = {"model": source.spec, "contrast": samples.contrast, "label": samples.label_name, "kind": samples.kind,
         "groups": list(samples.groups) if samples.groups else None, "group_sizes": samples.group_sizes(),
         "paired": samples.paired, "reading": samples.reading, "word_pooling": samples.word_pooling,
         "site": site, "layers": layer_ids, "test": test, "unit": design.unit(), "unit_level": design.level,
         "unit_counts": samples.unit_counts(), "null": null_unit[design.level], "family": fdr_family,
         "family_description": family, "correction": correction, "bh": bh.family_description,
         "bonferroni": bonf.family_description, "alpha": alpha, "permutations": permutations,
         "reference_permutations": reference_permutations, "cv": cv,
         "cv_folds": ("grouped by " + ("pair" if design.paired else design.unit_names[0])
                      if design.level != "occurrence" else "stratified, ungrouped"),
         "seed": seed, "notes": samples.notes, "n_significant_total": total}
    if hasattr(source, "store"):  # read from an activation store: which one, and its storage dtype
        s["store"], s["store_dtype"] = str(source.store.folder), source.dtype
    if samples.kind == "binary":
        s.update(probe_ks=probe_ks(ks, samples.y, cv), probe_rankings=list(rank_by) if probes else [],
                 confounds=confound_columns(samples))
        rows = samples.rows
        s["confound_balance"] = {g: {"char_len": float(rows.loc[rows["group"] == g, "char_len"].mean()),
                                     "log_freq": float(rows.loc[rows["group"] == g, "log_freq"].mean())}
                                 for g in samples.groups}
    if permutations:
        s["null_total"] = null_band(null.sum(1), total)
    null_txt = f"; null: {permutations} null labellings ({null_unit[design.level]})" if permutations else ""
    s["statement"] = (f"Test: {test}. Unit of replication: {design.unit()}. Family: {family}. Correction: "
                      f"{correction} over that family{null_txt}. Samples: {samples.describe()}.")
    return s
