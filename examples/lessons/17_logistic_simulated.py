"""Lesson 17, logistic regression on simulated data: the fit, the sigmoid, the summary table, separation.

Question: what does a logistic regression of a binary label on one neuron's activation estimate, and when
does it break?

    python examples/lessons/17_logistic_simulated.py [--quick] [--out DIR] [--seed S]

No model: one simulated "neuron" whose activation is higher on average for group 1 (effect size d), fitted
with statsmodels' Logit (label ~ activation). The figure: the points (labels jittered vertically) with
the fitted sigmoid and the true one; beside it the same with perfectly separated groups, where the
maximum-likelihood slope runs off to infinity (statsmodels flags it; lamina reports such a neuron as
`separable` with a likelihood-ratio p instead of a Wald p). The fit's summary table is written as text.
"""
import numpy as np
import statsmodels.api as sm
from common import Lesson


def simulate(rng, n: int, d: float):
    y = np.repeat([0, 1], n)
    x = rng.normal(0, 1, 2 * n) + d * y
    return x, y


def fit(x, y):
    """Logit of y on x; None when the groups are perfectly separated (no finite maximum)."""
    try:
        res = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    except Exception as err:                                   # PerfectSeparationError in older statsmodels
        return None, str(err).splitlines()[0]
    if not np.isfinite(res.bse).all() or abs(res.params[1]) > 50:
        return res, "the slope diverges: the groups are perfectly separated"
    return res, None


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--seed",), {"type": int, "default": 0})])
    rng = np.random.default_rng(L.args.seed)
    n, d = L.pick(40, 100), 1.0
    x, y = simulate(rng, n, d)
    res, _ = fit(x, y)
    (L.out / "logit_summary.txt").write_text(str(res.summary()) + "\n")
    print(res.summary())
    xs_sep = np.r_[rng.uniform(-3, -0.2, n), rng.uniform(0.2, 3, n)]
    y_sep = np.repeat([0, 1], n)
    res_sep, sep_note = fit(xs_sep, y_sep)
    plt = L.plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    grid = np.linspace(min(x.min(), -3), max(x.max(), 4), 200)
    jitter = rng.uniform(-0.05, 0.05, len(y))
    ax[0].scatter(x, y + jitter, s=8, alpha=0.5, c=y, cmap="coolwarm")
    b0, b1 = res.params
    ax[0].plot(grid, 1 / (1 + np.exp(-(b0 + b1 * grid))), "k",
               label=f"fitted: b1 = {b1:.2f} (p = {res.pvalues[1]:.2g})")
    # the true model: two normals with unit variance and mean gap d give logit p = d*x - d^2/2
    ax[0].plot(grid, 1 / (1 + np.exp(-(d * grid - d * d / 2))), "k--", label=f"true: b1 = {d:.2f}")
    ax[0].set_xlabel("activation")
    ax[0].set_ylabel("label (jittered)")
    ax[0].legend(fontsize=7)
    ax[0].set_title(f"overlapping groups, d = {d}", fontsize=8)
    ax[1].scatter(xs_sep, y_sep + jitter, s=8, alpha=0.5, c=y_sep, cmap="coolwarm")
    if res_sep is not None:
        c0, c1 = res_sep.params
        ax[1].plot(grid, 1 / (1 + np.exp(-np.clip(c0 + c1 * grid, -50, 50))), "k", label=f"b1 = {c1:.3g}")
        ax[1].legend(fontsize=7)
    ax[1].set_title(f"perfectly separated: {sep_note or 'converged'}"[:70], fontsize=7)
    ax[1].set_xlabel("activation")
    L.figure(fig, "sigmoid")
    summary = {"n_per_group": n, "d": d, "true_slope": d, "slope": b1, "slope_se": res.bse[1], "p": res.pvalues[1],
               "pseudo_r2": res.prsquared, "separation": {"note": sep_note,
                                                           "slope": None if res_sep is None else res_sep.params[1]}}
    return L.finish(summary, look="the fitted sigmoid near the true one on the left; on the right the slope "
                                  "running off (separation), and logit_summary.txt",
                    differs="none in the fit; lamina adds the separation case, which the course's neurons can hit")


if __name__ == "__main__":
    main()
