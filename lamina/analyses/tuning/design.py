"""The design of a tuning run, and what the run states about itself.

    design_for / cv_groups   the primary test's unit of replication and controls (stats.PrimaryDesign), the CV
                             folds' groups
    few_levels_notes         the line a unit with few levels earns (it sets the df; crossed: use --control)
    drop_first_token         the attention-sink samples left out at resid sites
    check_sizes              the fewest samples (and units) per group the requested tests need
    describe_test            the primary test in one sentence, with its unit
    run_settings             the settings block of tuning.json: test, unit, family, correction, null, statement,
                             and the TuneSettings as they were given
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lamina.analyses.sources.base import ActivationSource
from lamina.analyses.tuning.contrasts import SampleSet
from lamina.analyses.tuning.contrasts.label_columns import table_column
from lamina.analyses.tuning.layer import confound_columns, probe_ks
from lamina.analyses.tuning.settings import TuneSettings
from lamina.errors import InputError
from lamina.stats import MIN_GROUP_SIZE, PrimaryDesign, TooFewSamplesError, null_band
from lamina.stats.clustered import LabelExplainedError, prepare_columns, slope_tests


def design_for(samples: SampleSet, unit=None, control=(), vcov: str = "CR2") -> PrimaryDesign:
    """The primary test's design: the samples' own units (None / "default"), "occurrence" (every row
    independent), or one or two row columns (a name, "a,b", or a list); `control`: row columns entered as
    fixed effects (design factors crossed with the units, e.g. a sentence template)."""
    control = tuple(control or ())
    if samples.paired:
        if unit not in (None, "default", "pair", ("pair",), ["pair"]):
            raise InputError(f"{samples.contrast} is a paired design: its unit is the pair (paired t); "
                             "--unit / --unit-column do not apply")
        if control:
            raise InputError(f"{samples.contrast} is a paired design: the pair already holds every factor "
                             "constant; --control does not apply")
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
    both = [c for c in control if c in names]
    if both:
        raise InputError(f"'{both[0]}' is given as both --control and --unit-column; a factor is either a unit of "
                         "replication (clustered) or a design factor crossed with the units (--control)")
    for c in names:
        if table_column(rows, c) not in rows:
            raise InputError(f"unknown --unit-column '{c}'; the samples have {', '.join(map(str, rows.columns))}")
        if rows[table_column(rows, c)].nunique() < 2:
            raise InputError(f"unit '{c}' has a single level over the {len(rows)} samples; a test with it as the "
                             "unit needs at least 2 (choose another --unit-column, or --unit occurrence)")
    columns = [rows[samples.control].to_numpy(float)] if samples.kind == "continuous" and samples.control else []
    for c in control:
        if table_column(rows, c) not in rows:
            raise InputError(f"unknown --control '{c}'; the samples have {', '.join(map(str, rows.columns))}")
        levels = rows[table_column(rows, c)].astype(str)
        if levels.nunique() < 2:
            raise InputError(f"--control '{c}' has a single level over the {len(rows)} samples: a fixed effect "
                             "needs at least 2 levels (drop --control {c})".replace("{c}", c))
        columns.append(pd.get_dummies(levels, drop_first=True).to_numpy(float))
    C = np.column_stack(columns) if columns else None
    return PrimaryDesign(samples.kind, False, names, tuple(rows[table_column(rows, c)].to_numpy() for c in names), C,
                         control, vcov)


def few_levels_notes(samples: SampleSet, design: PrimaryDesign, limit: int = 20) -> list[str]:
    """One line per unit with fewer than `limit` levels: it sets the test's degrees of freedom (how many), and
    when it is crossed with the other unit (most of that unit's levels appear under several of its levels),
    that it is a design factor for --control rather than a unit."""
    notes = []
    if not design.clusters:
        return notes
    codes = [pd.factorize(pd.Series(np.asarray(c, dtype=object)))[0] for c in design.clusters]
    for i, (name, c) in enumerate(zip(design.unit_names, codes)):
        g = int(c.max()) + 1
        if g >= limit:
            continue
        df = _design_df(samples, design)
        line = (f"unit '{name}' has {g} levels: it sets the test's degrees of freedom (about {df:.1f}, "
                f"Bell-McCaffrey; CR1 would use {g - 1})")
        if len(codes) == 2:
            other, oc = design.unit_names[1 - i], codes[1 - i]
            spread = pd.Series(c).groupby(oc).nunique()
            if (spread > 1).mean() >= 0.8:
                line += (f"; it is crossed with '{other}' (most {other} levels appear under several {name} levels): "
                         f"a design factor like this belongs in --control {name}, with --unit-column {other}")
        notes.append(line)
    return notes


def _design_df(samples: SampleSet, design: PrimaryDesign) -> float:
    """The primary test's typical df on these samples: CR2's df depend on the design and on each neuron's
    variance components, so the median over 200 independent noise columns (homoskedastic, no cluster effect)."""
    n = len(samples.y)
    Xr, C, k = prepare_columns(np.random.default_rng(0).normal(size=(n, 200)), design.control)
    try:
        return float(np.median(slope_tests(Xr, np.asarray(samples.y, dtype=float), design.cluster_design(n), C, k,
                                           design.vcov)["df"]))
    except LabelExplainedError:
        return float("nan")


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


def describe_test(samples: SampleSet, design: PrimaryDesign | None = None) -> str:
    """The primary test in one sentence, with its unit."""
    design = design or design_for(samples)
    ctrl = " and ".join(c.replace("_", " ") for c in samples.control)
    fixed = " and ".join(design.control_names)
    if design.level == "clustered" or design.control_names:
        what = (f"OLS slope of each neuron on {samples.label_name}" + (f", controlling for {ctrl}" if ctrl else "")
                if samples.kind == "continuous" else
                f"OLS of each neuron on the label {samples.groups[0]} vs {samples.groups[1]} (the difference in means)")
        what += f", with fixed effects of {fixed}" if fixed else ""
        if design.clusters:
            way = "two-way" if len(design.unit_names) == 2 else "one-way"
            se = f"{way} cluster-robust standard errors by {' and '.join(design.unit_names)}"
        else:
            se = "heteroskedasticity-robust standard errors (one cluster per sample)"
        if design.vcov == "CR1":
            return (f"{what}, with {se} (CRV1, Cameron-Gelbach-Miller, small-sample corrected), two-sided t with "
                    "G-1 df (G: the smaller cluster count)")
        return (f"{what}, with {se} (CR2 bias-reduced linearization, Bell-McCaffrey), two-sided t with "
                "Satterthwaite (Bell-McCaffrey) df")
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


def read_counts(tokenizer, samples: SampleSet) -> dict:
    """What the run read (not the corpus's size): texts, their model tokens, the documents its samples come from."""
    tokens = sum(len(ids) for ids in tokenizer(list(samples.texts), truncation=True,
                                               max_length=samples.max_length)["input_ids"]) if samples.texts else 0
    return {"texts": len(samples.texts), "tokens": int(tokens), "samples": len(samples.rows),
            "documents": int(samples.rows["doc"].nunique()) if "doc" in samples.rows else len(samples.texts)}


def run_settings(source: ActivationSource, samples: SampleSet, design: PrimaryDesign, ts: TuneSettings,
                 layer_ids: list[int], bh, bonf, null: np.ndarray, laminar: pd.DataFrame) -> dict:
    """The settings block of a run's results: what was tested, at which unit, over which family, with which
    null, in words and numbers; `tune_settings`: the TuneSettings as they were given."""
    site, alpha, fdr_family, permutations = ts.site, ts.alpha, ts.fdr_family, ts.permutations
    test = describe_test(samples, design)
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
         "reference_permutations": ts.reference_permutations, "cv": ts.cv,
         "cv_folds": ("grouped by " + ("pair" if design.paired else design.unit_names[0])
                      if design.level != "occurrence" else "stratified, ungrouped"),
         "seed": ts.seed, "notes": samples.notes, "n_significant_total": total,
         "read": read_counts(source.tokenizer, samples)}
    s.update(source.provenance())  # where the activations came from: a store's folder and storage dtype
    if samples.kind == "binary":
        s.update(probe_ks=probe_ks(ts.ks, samples.y, ts.cv), probe_rankings=list(ts.rank_by) if ts.probes else [],
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
    s["tune_settings"] = dataclasses.asdict(ts)
    return s
