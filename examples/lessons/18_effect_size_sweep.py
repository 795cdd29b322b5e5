"""Lesson 18, the effect-size sweep: logistic regression and the t-test as the groups move apart.

Question: as the true effect grows, how do the logistic slope, the t statistic and their p-values relate,
and where does logistic regression break?

    python examples/lessons/18_effect_size_sweep.py [--quick] [--out DIR] [--seed S]

No model: simulated neurons with effect sizes d from 0 to 4 (unit-variance groups of n each), each tested
by Welch's t and by statsmodels' Logit. Figures: beta against t; -log10 p of the logistic likelihood-ratio
test against -log10 p of the t-test (they agree while the groups overlap); and the fraction of
simulations with perfect separation against d, where the Wald p and the slope stop being finite.
"""
import numpy as np
import statsmodels.api as sm
from common import Lesson
from scipy import stats


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--seed",), {"type": int, "default": 0})])
    rng = np.random.default_rng(L.args.seed)
    n, reps = L.pick(15, 20), L.pick(3, 20)
    ds = np.linspace(0, 4, L.pick(9, 17))
    rows = []
    for d in ds:
        for _ in range(reps):
            y = np.repeat([0, 1], n)
            x = rng.normal(0, 1, 2 * n) + d * y
            t, p_t = stats.ttest_ind(x[y == 1], x[y == 0], equal_var=False)
            separated = x[y == 1].min() > x[y == 0].max()
            beta, p_lr, p_wald = np.nan, np.nan, np.nan
            if not separated:
                res = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
                beta, p_lr, p_wald = res.params[1], res.llr_pvalue, res.pvalues[1]
            else:                       # the LR test still exists: the fitted likelihood tends to 1
                p_lr = stats.chi2.sf(-2 * len(y) * np.log(0.5), 1)
            rows.append({"d": d, "t": t, "p_t": p_t, "beta": beta, "p_lr": p_lr, "p_wald": p_wald,
                         "separated": separated})
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(L.out / "sweep.csv", index=False)
    plt = L.plt()
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ok = ~df["separated"]
    sc = ax[0].scatter(df.loc[ok, "t"], df.loc[ok, "beta"], c=df.loc[ok, "d"], s=8, cmap="viridis")
    ax[0].set_xlabel("Welch t")
    ax[0].set_ylabel("logistic slope beta")
    fig.colorbar(sc, ax=ax[0], label="true d")
    lim = max(-np.log10(df["p_t"]).max(), -np.log10(df["p_lr"]).max())
    ax[1].scatter(-np.log10(df.loc[ok, "p_t"]), -np.log10(df.loc[ok, "p_lr"]), s=8, c=df.loc[ok, "d"], cmap="viridis")
    ax[1].scatter(-np.log10(df.loc[~ok, "p_t"]), -np.log10(df.loc[~ok, "p_lr"]), s=12, marker="x", c="C3",
                  label="separated (LR bound)")
    ax[1].plot([0, lim], [0, lim], "k:", lw=0.8)
    ax[1].set_xlabel("-log10 p, t-test")
    ax[1].set_ylabel("-log10 p, logistic (LR)")
    ax[1].legend(fontsize=7)
    sep = df.groupby("d")["separated"].mean()
    ax[2].plot(sep.index, sep.values, "o-")
    ax[2].set_xlabel("true effect size d")
    ax[2].set_ylabel(f"fraction perfectly separated (n = {n} per group)")
    L.figure(fig, "sweep")
    low = df[(df["d"] <= 1.5) & ok]
    rho = stats.spearmanr(low["p_t"], low["p_lr"])[0] if len(low) > 2 else None
    first_sep = float(sep[sep > 0].index.min()) if (sep > 0).any() else None
    summary = {"n_per_group": n, "reps": reps, "d": ds, "fraction_separated": sep.tolist(),
               "first_d_with_separation": first_sep, "spearman_p_t_vs_p_lr_d_le_1_5": rho,
               "spearman_beta_vs_t": stats.spearmanr(df.loc[ok, "beta"], df.loc[ok, "t"])[0]}
    print({k: summary[k] for k in ("first_d_with_separation", "spearman_p_t_vs_p_lr_d_le_1_5", "spearman_beta_vs_t")})
    return L.finish(summary, look="beta rising with t; the two -log p agreeing on the diagonal until separation; "
                                  "the separated fraction climbing with d")


if __name__ == "__main__":
    main()
