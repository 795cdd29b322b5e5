"""Neuron tuning to a contrast, layer by layer: which neurons of a site kind respond, and how many.

One contrast flows like this:
    SampleSet (contrasts.py): texts + one row per sample (text, token positions read, label)
    ──► gather_activations: the texts through the model in batches, capturing every requested layer at
        once; each sample's positions pooled -> {site: [n_samples, n_neurons]} (q/k/v: heads * d_head)
    ──► per layer: binary labels: Welch t (paired t for matched pairs), Mann-Whitney U, Cohen's d,
        one-neuron logistic regression (Wald p, CV balanced accuracy and AUC), the contrast controlling
        for the confounds (partial correlation with char length and log frequency), token identity
        (epsilon squared), sparse probes on the top-k neurons, a replication split;
        continuous labels: Pearson and partial correlation (controls), token identity, replication
    ──► BH FDR and Bonferroni over the stated family (each layer, or the whole model)
    ──► a label-permutation null of the count of significant neurons, per layer and in total
    ──► tidy tables (one row per neuron; one row per layer) + token heatmap data for the top neurons
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina.analyses.contrasts import SampleSet
from lamina.analyses.tuning_examples import token_heatmaps
from lamina import validate
from lamina.errors import InputError
from lamina.probes import RANKINGS, logistic_tests, sparse_probe
from lamina.stats import (MIN_GROUP_SIZE, TooFewSamplesError, _r_pvalue, _residualise, _t_pvalues_batch,
                          contrast_tests, correct_pvalues, correlation_tests, replication_split,
                          token_identity_control)

TUNE_KINDS = ("mlp_post", "mlp_pre", "mlp_out", "attn_out", "resid_pre", "resid_mid", "resid_post", "q", "k", "v")
PROBE_KS = (1, 2, 4, 8, 16, 32, 64)
FAMILIES = ("layer", "model")


@dataclass
class TuningResult:
    neurons: pd.DataFrame       # one row per (layer, neuron): every statistic, q-values, significance
    laminar: pd.DataFrame       # one row per layer: fraction significant, null band, best accuracy, top neurons
    probes: pd.DataFrame        # layer, rank_by, k, f1, mcc, auc, auc_std, neurons (binary contrasts)
    null_counts: np.ndarray     # [n_permutations, n_layers]: significant neurons under permuted labels
    top: pd.DataFrame           # the strongest neurons over all layers
    samples: SampleSet
    examples: list = field(default_factory=list)    # heatmap data: top neurons over sample texts
    lessons: dict = field(default_factory=dict)     # token-length lessons (histograms, r quantiles)
    settings: dict = field(default_factory=dict)    # contrast, test, family, correction, statement, sizes

    def to_json(self) -> dict:
        return {"settings": self.settings,
                "layers": self.laminar.to_dict(orient="records"),
                "top_neurons": self.top.to_dict(orient="records")}


# --------------------------------------------------------------------------- inputs
def parse_layers(spec, n_layers: int) -> list[int]:
    """'0-29', '3,5,7', '0-3,10', 'all' or None (every layer) -> sorted layer indices."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return list(range(n_layers))
    if not isinstance(spec, str):
        out = sorted({int(x) for x in spec})
    else:
        out = set()
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
            if not m:
                raise InputError(f"--layers '{spec}': write a range 0-29, a list 3,5,7, or 'all'")
            lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
            out.update(range(lo, hi + 1))
        out = sorted(out)
    bad = [L for L in out if not 0 <= L < n_layers]
    if bad or not out:
        raise InputError(f"--layers '{spec}': this model has layers 0-{n_layers - 1}")
    return out


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
    n, why = max(need)
    return n, why


def check_sizes(samples: SampleSet, cv: int, replication: bool = True) -> None:
    """Raise TooFewSamplesError naming the group, its size and the minimum the requested tests need."""
    need, why = required_per_group(samples, cv, replication)
    for name, n in samples.group_sizes().items():
        if n < need:
            unit = "pairs" if samples.paired else "samples"
            raise TooFewSamplesError(
                f"{samples.contrast}: group '{name}' has {n} {unit}; {why} needs at least {need} per group. "
                "Give more examples" + (", or fewer --cv folds" if "fold" in why else ""))


# --------------------------------------------------------------------------- activations
def gather_activations(lm, samples: SampleSet, sites, batch_size: int = 8, progress: bool = False) -> dict:
    """{site name: float32 array [n_samples, n_neurons]}: each sample's token positions, pooled by mean.

    Texts go through the model sorted by length, every site captured in one forward pass (early stop after
    the deepest). A batch holds up to `batch_size` x 128 padded tokens: `batch_size` texts of 128 tokens, more
    short ones (a forward pass on CPU costs about the same for 8 short texts as for 64). q/k/v are flattened
    to heads * d_head (neuron h*d_head + j).
    """
    rows = samples.rows
    sites = lm.sites(sites) if sites and isinstance(sites[0], str) else sites
    by_text = rows.groupby("text").indices
    lengths = {t: len(lm.tokenizer(samples.texts[t], truncation=True, max_length=samples.max_length)["input_ids"])
               for t in by_text}
    order = sorted(by_text, key=lambda t: lengths[t])
    chunks, budget = [[]], batch_size * 128
    for t in order:  # lengths ascending: the last text of a batch is its longest
        if chunks[-1] and (len(chunks[-1]) + 1) * lengths[t] > budget:
            chunks.append([])
        chunks[-1].append(t)
    n = len(rows)
    out: dict[str, np.ndarray] = {}
    positions = rows["positions"].tolist()
    for chunk in tqdm(chunks, desc="capture", unit="batch", disable=not progress):
        enc = lm.tokenizer([samples.texts[t] for t in chunk], padding=True, truncation=True,
                           max_length=samples.max_length, return_tensors="pt")
        mask = enc["attention_mask"]
        acts = lm.capture({"input_ids": enc["input_ids"].to(lm.device), "attention_mask": mask.to(lm.device)}, sites)
        owner, b_idx, t_idx, local = [], [], [], []
        for b, t in enumerate(chunk):
            real = mask[b].nonzero().flatten()  # positions of real tokens (left or right padding)
            for s in by_text[t]:
                local.append(s)
                for p in positions[s]:
                    owner.append(len(local) - 1)
                    b_idx.append(b)
                    t_idx.append(int(real[p]))
        owner_t = torch.as_tensor(owner)
        counts = torch.bincount(owner_t, minlength=len(local)).float()[:, None]
        for site in sites:
            a = acts[site.name].flatten(2).float()                    # [batch, tokens, width]
            vals = a[torch.as_tensor(b_idx), torch.as_tensor(t_idx)]  # [m, width]
            pooled = torch.zeros(len(local), a.shape[-1]).index_add_(0, owner_t, vals.cpu()) / counts
            if site.name not in out:
                out[site.name] = np.empty((n, a.shape[-1]), dtype=np.float32)
            out[site.name][local] = pooled.numpy()
    return out


# --------------------------------------------------------------------------- per layer
def _confound_columns(samples: SampleSet) -> list[str]:
    """The confound columns (char length, log frequency) that vary over the samples."""
    return [c for c in ("char_len", "log_freq") if c in samples.rows and np.ptp(samples.rows[c].to_numpy(float)) > 0]


def _confounds(samples: SampleSet) -> np.ndarray | None:
    """[n, k] confound values (see `_confound_columns`), or None when none varies."""
    cols = _confound_columns(samples)
    return samples.rows[cols].to_numpy(float) if cols else None


def _paired_replication(X, y, seed: int) -> dict:
    """Paired-t maps on two random halves of the pairs: their concordance."""
    pos, neg = X[y], X[~y]
    idx = np.random.default_rng(seed).permutation(len(pos))
    halves = np.array_split(idx, 2)
    ts = []
    for h in halves:
        Xh = np.concatenate([pos[h], neg[h]])
        yh = np.r_[np.ones(len(h), bool), np.zeros(len(h), bool)]
        ts.append(contrast_tests(Xh, yh, paired=True)["t"].to_numpy())
    return _concordance(*ts)


def _continuous_replication(X, z, C, seed: int) -> dict:
    idx = np.random.default_rng(seed).permutation(len(z))
    rs = []
    for h in np.array_split(idx, 2):
        r = correlation_tests(X[h], z[h], None if C is None else C[h])
        rs.append(r["partial_r" if C is not None else "r"].to_numpy())
    return _concordance(*rs)


def _concordance(a, b) -> dict:
    from scipy import stats

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return {"replication_r": np.nan, "replication_rho": np.nan}
    return {"replication_r": float(stats.pearsonr(a[ok], b[ok])[0]),
            "replication_rho": float(stats.spearmanr(a[ok], b[ok])[0])}


def _layer_binary(X, samples: SampleSet, cv, ks, rank_by, seed, probes: bool) -> tuple[pd.DataFrame, list, dict]:
    y = samples.y
    ct = contrast_tests(X, y, paired=samples.paired)
    lt = logistic_tests(X, y, cv=cv, seed=seed)
    df = ct.rename(columns={"u": "mwu_u"})
    df["logit_coef"], df["logit_se"], df["logit_p"] = lt["coef"], lt["se"], lt["p"]
    df["separable"], df["converged"] = lt["separable"], lt["converged"]
    df["cv_balanced_accuracy"], df["cv_auc"] = lt["cv_balanced_accuracy"], lt["cv_auc"]
    C = _confounds(samples)
    if C is not None:
        try:
            pc = correlation_tests(X, y.astype(float), control=C)
            df["controlled_r"], df["controlled_p"] = pc["partial_r"], pc["partial_p"]
        except ValueError:  # the label is explained by the confounds: nothing left to test
            df["controlled_r"] = df["controlled_p"] = np.nan
    _token_control(df, X, samples)
    extra = _paired_replication(X, y, seed) if samples.paired else _replication(X, y, seed)
    probe_rows = []
    if probes:
        for r in rank_by:
            p = sparse_probe(X, y, ks=probe_ks(ks, y, cv), rank_by=r, cv=cv, seed=seed)
            probe_rows += p.to_dict(orient="records")
    return df, probe_rows, extra


def probe_ks(ks, y, cv: int) -> list[int]:
    """The ks no larger than the smaller group's training-fold size: a probe on more neurons than examples
    of a class fits noise (and its solver crawls on separable folds)."""
    limit = max(1, int(min(y.sum(), (~y).sum()) * (cv - 1) / cv))
    return [k for k in ks if k <= limit] or [1]


def _replication(X, y, seed) -> dict:
    rep = replication_split(X, y, seed=seed)
    return {"replication_r": rep.pearson_r, "replication_rho": rep.spearman_rho}


def _layer_continuous(X, samples: SampleSet, seed) -> tuple[pd.DataFrame, list, dict]:
    z = samples.y
    C = samples.rows[samples.control].to_numpy(float) if samples.control else None
    df = correlation_tests(X, z, control=C)
    _token_control(df, X, samples)
    return df, [], _continuous_replication(X, z, C, seed)


def _token_control(df: pd.DataFrame, X, samples: SampleSet) -> None:
    ids = samples.rows["token_id"].to_numpy()
    if len(np.unique(ids)) < 2:
        df["token_eta2"] = df["token_eps2"] = np.nan
        return
    tc = token_identity_control(X, ids)
    df["token_eta2"], df["token_eps2"] = tc["eta_squared"], tc["epsilon_squared"]


def _primary_p(df: pd.DataFrame, samples: SampleSet) -> np.ndarray:
    if samples.kind == "binary":
        return df["p"].to_numpy()
    return df["partial_p" if samples.control else "p"].to_numpy()


def _effect(df: pd.DataFrame, samples: SampleSet) -> np.ndarray:
    if samples.kind == "binary":
        return df["t"].to_numpy()
    return df["partial_r" if samples.control else "r"].to_numpy()


# --------------------------------------------------------------------------- permutation null
def _draw_permutations(samples: SampleSet, n: int, seed: int) -> np.ndarray:
    """The same draws as `stats.permutation_null` with this seed (so its counts can be checked)."""
    rng = np.random.default_rng(seed)
    y = samples.y
    if samples.paired:
        return rng.choice([-1.0, 1.0], size=(n, int(y.sum())))
    if samples.kind == "binary":
        return np.array([rng.permutation(y) for _ in range(n)], dtype=float)
    return np.array([rng.permutation(len(y)) for _ in range(n)])


def _null_pvalues(X, samples: SampleSet, keep: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """[n_permutations, n_kept] p-values of the primary test under permuted labels."""
    y, Xk = samples.y, np.asarray(X, dtype=float)[:, keep]
    out = np.empty((len(draws), Xk.shape[1]))
    if samples.kind == "continuous":
        C = samples.rows[samples.control].to_numpy(float) if samples.control else None
        if C is not None:
            Xr, zr = _residualise(Xk, C), _residualise(y[:, None], C)[:, 0]
            df = len(y) - 2 - C.shape[1]
        else:
            Xr, zr, df = Xk - Xk.mean(0), y - y.mean(), len(y) - 2
        Xs = (Xr - Xr.mean(0)) / np.linalg.norm(Xr - Xr.mean(0), axis=0)
        zs = (zr - zr.mean()) / np.linalg.norm(zr - zr.mean())
        for s in range(0, len(draws), 50):
            r = np.clip(zs[draws[s:s + 50]] @ Xs, -1, 1)
            out[s:s + 50] = _r_pvalue(r, df)
        return out
    if samples.paired:
        d = Xk[y] - Xk[~y]
        data = d / np.maximum(np.sqrt((d ** 2).mean(0)), 1e-300)
    else:
        sd = Xk.std(0)
        data = (Xk - Xk.mean(0)) / np.where(sd > 0, sd, 1.0)
    for s in range(0, len(draws), 50):
        out[s:s + 50] = _t_pvalues_batch(data, draws[s:s + 50], samples.paired)
    return out


def _count(p_rows: list[np.ndarray], family: str, alpha: float, method: str) -> np.ndarray:
    """Significant counts per layer for one labelling: p_rows[layer] = p-values of its kept neurons."""
    if family == "layer":
        return np.array([int(correct_pvalues(p, method, "model", alpha=alpha).reject.sum()) if p.size else 0
                         for p in p_rows])
    flat = np.concatenate(p_rows)
    reject = correct_pvalues(flat, method, "model", alpha=alpha).reject
    bounds = np.cumsum([0] + [p.size for p in p_rows])
    return np.array([int(reject[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])])


# --------------------------------------------------------------------------- the analysis
def tune(lm, samples: SampleSet, site: str = "mlp_post", layers=None, permutations: int = 100,
         fdr_family: str = "layer", alpha: float = 0.05, cv: int = 5, ks=PROBE_KS, rank_by=RANKINGS,
         probes: bool = True, top_n: int = 10, n_examples: int = 4, batch_size: int = 8, seed: int = 0,
         progress: bool = True) -> TuningResult:
    """Per-neuron tuning of `site` neurons to a contrast in every requested layer (see module docstring)."""
    t0 = time.perf_counter()
    if site not in TUNE_KINDS:
        raise InputError(f"unknown --site '{site}'; choose one of {', '.join(TUNE_KINDS)}")
    if fdr_family not in FAMILIES:
        raise InputError(f"unknown --fdr-family '{fdr_family}'; choose layer or model")
    alpha = validate.fraction("alpha", alpha)
    if permutations < 0:
        raise InputError("--permutations must be 0 or more")
    if cv < 2:
        raise InputError("--cv must be at least 2 folds")
    bad = [r for r in rank_by if r not in RANKINGS]
    if bad:
        raise InputError(f"unknown ranking '{bad[0]}'; choose from {', '.join(RANKINGS)}")
    layer_ids = parse_layers(layers, lm.n_layers)
    sites = lm.sites([f"{site}.{L}" for L in layer_ids])  # SiteError for kinds this model lacks
    check_sizes(samples, cv)
    acts = gather_activations(lm, samples, sites, batch_size, progress)
    t_capture = time.perf_counter() - t0

    frames, probe_rows, extras = [], [], []
    for L, s in tqdm(list(zip(layer_ids, sites)), desc=f"tune {site}", unit="layer", disable=not progress):
        X = acts[s.name]
        if samples.kind == "binary":
            df, pr, extra = _layer_binary(X, samples, cv, ks, rank_by, seed, probes)
        else:
            df, pr, extra = _layer_continuous(X, samples, seed)
        df.insert(0, "neuron", np.arange(len(df)))
        df.insert(0, "layer", L)
        frames.append(df.reset_index(drop=True))
        probe_rows += [{"layer": L, **r} for r in pr]
        extras.append(extra)
    neurons = pd.concat(frames, ignore_index=True)
    neurons.insert(2, "name", [f"{site}.{L}:{i}" for L, i in zip(neurons["layer"], neurons["neuron"])])

    # multiple testing over the stated family
    p = _primary_p(neurons, samples)
    bh = correct_pvalues(p, "fdr_bh", fdr_family, neurons["layer"].to_numpy(), alpha)
    bonf = correct_pvalues(p, "bonferroni", fdr_family, neurons["layer"].to_numpy(), alpha)
    neurons["q"], neurons["significant"] = bh.p_adjusted, bh.reject
    neurons["p_bonferroni"], neurons["significant_bonferroni"] = bonf.p_adjusted, bonf.reject
    for col, qcol in (("logit_p", "logit_q"), ("p_mwu", "q_mwu"), ("controlled_p", "controlled_q")):
        if col in neurons and neurons[col].notna().any():  # the same family and method for the side tests
            c = correct_pvalues(neurons[col].to_numpy(), "fdr_bh", fdr_family, neurons["layer"].to_numpy(), alpha)
            neurons[qcol] = c.p_adjusted
    if "controlled_q" in neurons:
        neurons["significant_controlled"] = neurons["controlled_q"] < alpha
    neurons["family"] = "each layer" if fdr_family == "layer" else "whole model"

    # permutation null of the count of significant neurons (BH, same family)
    keeps = [~np.isnan(_primary_p(f, samples)) for f in frames]
    null = np.zeros((permutations, len(layer_ids)), dtype=int)
    if permutations:
        draws = _draw_permutations(samples, permutations, seed)
        P = [_null_pvalues(acts[s.name], samples, k, draws) for s, k in zip(sites, keeps)]
        for i in range(permutations):
            null[i] = _count([Pl[i] for Pl in P], fdr_family, alpha, "fdr_bh")
    laminar = _laminar(neurons, probe_rows, extras, null, layer_ids, samples, site, top_n)
    top = _top(neurons, samples, top_n)
    probes_df = pd.DataFrame(probe_rows)
    lessons = {}
    if samples.contrast == "token-length":
        from lamina.analyses.context_lessons import length_lessons

        lessons = length_lessons({L: acts[s.name] for L, s in zip(layer_ids, sites)}, samples.rows["char_len"],
                                 neurons)
    examples = token_heatmaps(lm, samples, laminar, acts, site, n_examples) if n_examples else []
    del acts
    settings = _settings(lm, samples, site, layer_ids, bh, bonf, permutations, fdr_family, alpha, cv, ks,
                         rank_by, probes, null, laminar, seed)
    settings["seconds"] = {"capture": round(t_capture, 1), "total": round(time.perf_counter() - t0, 1)}
    for table in (laminar, top):  # every output states its test and family
        table["test"], table["family"] = settings["test"], settings["family_description"]
    return TuningResult(neurons, laminar, probes_df, null, top, samples, examples, lessons, settings)


def _laminar(neurons, probe_rows, extras, null, layer_ids, samples, site, top_n) -> pd.DataFrame:
    probes = pd.DataFrame(probe_rows)
    rows = []
    for j, L in enumerate(layer_ids):
        d = neurons[neurons["layer"] == L]
        n = len(d)
        effect = _effect(d, samples)
        p = _primary_p(d, samples)
        order = np.lexsort((-np.abs(np.nan_to_num(effect)), np.nan_to_num(p, nan=2.0)))
        top_idx = d["neuron"].to_numpy()[order[:top_n]]
        row = {"layer": L, "site": f"{site}.{L}", "n_neurons": n, "n_tested": int(np.isfinite(p).sum()),
               "n_significant": int(d["significant"].sum()), "fraction_significant": d["significant"].mean(),
               "n_significant_bonferroni": int(d["significant_bonferroni"].sum()),
               "fraction_significant_bonferroni": d["significant_bonferroni"].mean()}
        if len(null):
            lo, hi = np.percentile(null[:, j], [2.5, 97.5])
            row.update(null_mean=null[:, j].mean() / n, null_low=lo / n, null_high=hi / n,
                       permutation_p=(1 + np.sum(null[:, j] >= row["n_significant"])) / (1 + len(null)))
        if samples.kind == "binary":
            row.update(best_neuron=int(d["neuron"].iat[order[0]]), best_t=float(d["t"].iat[order[0]]),
                       best_cohens_d=float(np.nanmax(np.abs(d["cohens_d"]))) if d["cohens_d"].notna().any() else np.nan,
                       best_cv_balanced_accuracy=float(d["cv_balanced_accuracy"].max()),
                       best_cv_auc=float(d["cv_auc"].max()), n_separable=int(d["separable"].sum()))
            if "significant_controlled" in d:
                row["n_significant_controlled"] = int(d["significant_controlled"].sum())
            pl = probes[probes["layer"] == L] if len(probes) else probes
            if len(pl):
                b = pl.loc[pl["auc"].idxmax()]
                row.update(probe_best_auc=float(b["auc"]), probe_best_k=int(b["k"]), probe_best_rank_by=b["rank_by"],
                           probe_best_f1=float(b["f1"]), probe_best_mcc=float(b["mcc"]))
                k1 = pl[pl["k"] == 1]
                row["probe_k1_auc"] = float(k1["auc"].max()) if len(k1) else np.nan
        else:
            col = "partial_r" if samples.control else "r"
            row.update(best_neuron=int(d["neuron"].iat[order[0]]), best_r=float(d[col].iat[order[0]]),
                       median_abs_r=float(np.nanmedian(np.abs(d[col]))))
        row["token_eps2_top"] = float(np.nanmedian(d["token_eps2"].to_numpy()[order[:top_n]])) \
            if d["token_eps2"].notna().any() else np.nan
        row.update(extras[j])
        row["top_neurons"] = " ".join(map(str, top_idx))
        rows.append(row)
    return pd.DataFrame(rows)


def _top(neurons: pd.DataFrame, samples: SampleSet, n: int) -> pd.DataFrame:
    effect = np.abs(np.nan_to_num(_effect(neurons, samples)))
    order = np.lexsort((-effect, np.nan_to_num(_primary_p(neurons, samples), nan=2.0)))
    cols = ["layer", "neuron", "name", "q", "p_bonferroni"]
    cols += (["t", "p", "cohens_d", "diff", "p_mwu", "logit_coef", "logit_p", "separable", "cv_balanced_accuracy",
              "cv_auc", "controlled_r", "controlled_p"] if samples.kind == "binary"
             else ["r", "p", "partial_r", "partial_p"])
    cols += ["token_eps2"]
    return neurons.iloc[order[:n]][[c for c in cols if c in neurons]].reset_index(drop=True)


def describe_test(samples: SampleSet, alpha: float) -> str:
    if samples.kind == "continuous":
        if samples.control:
            return (f"Pearson partial correlation of each neuron with {samples.label_name}, controlling for "
                    f"{' and '.join(c.replace('_', ' ') for c in samples.control)} (two-sided t test, "
                    f"n-{2 + len(samples.control)} df)")
        return f"Pearson correlation of each neuron with {samples.label_name} (two-sided t test, n-2 df)"
    a, b = samples.groups
    if samples.paired:
        return (f"paired t-test (two-sided) of {a} vs {b}: row i of {a} paired with row i of {b}; "
                "Mann-Whitney U is not used for pairs")
    return f"Welch's t-test (two-sided, unequal variances) of {a} vs {b}; Mann-Whitney U reported beside it"


def _settings(lm, samples, site, layer_ids, bh, bonf, permutations, fdr_family, alpha, cv, ks, rank_by, probes,
              null, laminar, seed) -> dict:
    test = describe_test(samples, alpha)
    width = int(laminar["n_neurons"].iat[0])
    family = (f"each layer ({width} {site} neurons per layer, {len(layer_ids)} layers)" if fdr_family == "layer"
              else f"the whole model ({width * len(layer_ids)} {site} neurons over {len(layer_ids)} layers)")
    correction = f"Benjamini-Hochberg FDR q < {alpha:g} (primary) and Bonferroni p x m < {alpha:g}"
    total = int(laminar["n_significant"].sum())
    s = {"model": lm.spec, "contrast": samples.contrast, "label": samples.label_name, "kind": samples.kind,
         "groups": list(samples.groups) if samples.groups else None, "group_sizes": samples.group_sizes(),
         "paired": samples.paired, "reading": samples.reading, "word_pooling": samples.word_pooling,
         "site": site, "layers": layer_ids, "test": test, "family": fdr_family, "family_description": family,
         "correction": correction, "bh": bh.family_description, "bonferroni": bonf.family_description,
         "alpha": alpha, "permutations": permutations, "cv": cv, "seed": seed, "notes": samples.notes,
         "n_significant_total": total}
    if samples.kind == "binary":
        s.update(probe_ks=probe_ks(ks, samples.y, cv), probe_rankings=list(rank_by) if probes else [],
                 confounds=_confound_columns(samples))
        rows = samples.rows
        s["confound_balance"] = {g: {"char_len": float(rows.loc[rows["group"] == g, "char_len"].mean()),
                                     "log_freq": float(rows.loc[rows["group"] == g, "log_freq"].mean())}
                                 for g in samples.groups}
    if permutations:
        tot = null.sum(1)
        lo, hi = np.percentile(tot, [2.5, 97.5])
        s["null_total"] = {"mean": float(tot.mean()), "low": float(lo), "high": float(hi),
                           "p_value": float((1 + np.sum(tot >= total)) / (1 + len(tot)))}
    null_txt = (f"; null: {permutations} label permutations" + (" (sign flips within pairs)" if samples.paired else "")
                if permutations else "")
    s["statement"] = (f"Test: {test}. Family: {family}. Correction: {correction} over that family{null_txt}. "
                      f"Samples: {samples.describe()}.")
    return s
