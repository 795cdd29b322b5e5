"""Known answers for the primary test (issue 19): rejection rates at 0.05 in the designs users run.

Each scenario draws one design (label, clusters) per seed and `m` independent "neurons" (columns) under it, so
one call of the vectorised test gives `m` replications. The truth is no effect, except in `planted`, where
every column carries a unit-level effect (its rate is the power). Rates are pooled over seeds; the
simulation standard error is sqrt(rate (1 - rate) / replications).

    python benchmarks/small_sample.py              # the table in docs/TUNING.md (20 seeds x 2,000 columns)
    python benchmarks/small_sample.py --seeds 5    # quicker
"""
from __future__ import annotations

import argparse

import numpy as np

from lamina.stats.clustered import ClusterDesign, prepare_columns, slope_tests
from lamina.stats.neuron_tests import contrast_tests


def _cluster_level(rng, sizes, treated, m, effect=0.0, sd_unit=1.0, sd_noise=1.0):
    """Clusters of the given sizes, a label fixed per cluster (`treated` of them), unit + noise errors."""
    G = len(sizes)
    codes = np.repeat(np.arange(G), sizes)
    lab_unit = np.zeros(G)
    lab_unit[rng.choice(G, treated, replace=False)] = 1
    x = lab_unit[codes]
    X = sd_unit * rng.normal(size=(G, m))[codes] + sd_noise * rng.normal(size=(len(codes), m)) + effect * x[:, None]
    return X, x, [codes]


def balanced(rng, m):
    """40 word types x 10 occurrences, 20 types per label, type effect + noise."""
    return _cluster_level(rng, [10] * 40, 20, m)


def five_clusters(rng, m):
    """5 clusters (templates) x 40 rows, the label varying within each, the effect varying by cluster
    (random slopes, mean 0): the slope's uncertainty is between 5 clusters."""
    G, per = 5, 40
    codes = np.repeat(np.arange(G), per)
    x = np.tile(np.r_[np.ones(per // 2), np.zeros(per // 2)], G)
    slopes = 0.7 * rng.normal(size=(G, m))
    X = rng.normal(size=(G, m))[codes] + slopes[codes] * x[:, None] + rng.normal(size=(G * per, m))
    return X, x, [codes]


def rare_class(rng, m):
    """200 word types x 3 occurrences, 8 types of one label (a rare class)."""
    return _cluster_level(rng, [3] * 200, 8, m)


def unequal_sizes(rng, m):
    """20 clusters, one of them holding half the rows (190 of 380), 10 clusters per label."""
    return _cluster_level(rng, [190] + [10] * 19, 10, m)


def unequal_variances(rng, m):
    """One sample per cluster (singletons): 12 of one label with sd 3, 120 of the other with sd 1."""
    n1, n0 = 12, 120
    x = np.r_[np.ones(n1), np.zeros(n0)]
    X = rng.normal(size=(n1 + n0, m)) * np.where(x[:, None] > 0, 3.0, 1.0)
    return X, x, [np.arange(n1 + n0)]


def planted(rng, m):
    """The balanced design with a unit-level effect of 0.8 (in units of the noise sd) in every column."""
    return _cluster_level(rng, [10] * 40, 20, m, effect=0.8)


SCENARIOS = {"balanced, 40 clusters": balanced, "5 clusters": five_clusters, "rare class, 8 of 200": rare_class,
             "unequal sizes, one cluster half the rows": unequal_sizes,
             "unequal variances, singletons (12 vs 120)": unequal_variances, "planted effect (power)": planted}


def rejections(scenario, seed: int, m: int = 2000, alpha: float = 0.05) -> dict:
    """Rejections at `alpha` of one seed's `m` columns: CR2 (the primary test), CR1 (the old test), and
    Welch's t on the rows (every sample independent; `welch`)."""
    X, x, clusters = SCENARIOS[scenario](np.random.default_rng(seed), m) if isinstance(scenario, str) \
        else scenario(np.random.default_rng(seed), m)
    design = ClusterDesign.build(clusters, len(x))
    Xr, C, k = prepare_columns(X, None)
    out = {v: int((slope_tests(Xr, x, design, C, k, v)["p"] < alpha).sum()) for v in ("CR2", "CR1")}
    out["welch"] = int((contrast_tests(X, x > 0.5, mwu=False)["p"].to_numpy() < alpha).sum())
    out["n"] = m
    return out


def rates(scenario, seeds=range(20), m: int = 2000, alpha: float = 0.05) -> dict:
    """Pooled rejection rate and its simulation standard error per test: {test: (rate, se)}."""
    runs = [rejections(scenario, s, m, alpha) for s in seeds]
    n = sum(r["n"] for r in runs)
    out = {}
    for test in ("CR2", "CR1", "welch"):
        rate = sum(r[test] for r in runs) / n
        out[test] = (rate, float(np.sqrt(rate * (1 - rate) / n)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--columns", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"| scenario ({args.seeds} seeds x {args.columns} columns) | CR2, Bell-McCaffrey df (primary) | "
          "CR1, G-1 df (old) | Welch on rows |")
    print("| --- | --- | --- | --- |")
    for name in SCENARIOS:
        r = rates(name, range(args.seeds), args.columns)
        print(f"| {name} | " + " | ".join(f"{r[t][0]:.4f} ± {r[t][1]:.4f}" for t in ("CR2", "CR1", "welch")) + " |")


if __name__ == "__main__":
    main()
