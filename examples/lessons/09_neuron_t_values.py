"""Lesson 9, the t-test per neuron: every neuron's t with the significance threshold, and the course's
arbitrary pairing beside Welch.

Question: how many neurons of a layer pass a corrected t-test for dental vs household words, and does the
choice of test change the answer?

    python examples/lessons/09_neuron_t_values.py [--model M] [--quick] [--out DIR] [--layer L]

The figure plots each neuron's t (lamina's clustered test) with the smallest |t| that passes BH at q < 0.05
and the Bonferroni threshold. The course paired word i of one list with word i of the other and ran a
paired t-test: the pairing is arbitrary (the lists are not matched), so the count depends on the word
order. Here it is run for 20 random orderings beside Welch's unpaired t and lamina's clustered test.
"""
import numpy as np
from common import Lesson
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lamina.analyses.sources.model import ModelSource
from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import tune


def bh_count(p) -> int:
    p = np.nan_to_num(np.asarray(p, float), nan=1.0)
    return int(multipletests(p, 0.05, "fdr_bh")[0].sum())


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    samples = category(lm.tokenizer)
    result = tune(lm, samples, site="mlp_post", layers=[layer], permutations=L.permutations(5, 100), probes=False,
                  n_examples=0, progress=False, reference_permutations=0)
    n = result.neurons
    sig = n[n["significant"]]
    bh_t = float(sig["t"].abs().min()) if len(sig) else None
    bonf_t = (float(n[n["significant_bonferroni"]]["t"].abs().min()) if n["significant_bonferroni"].any() else None)
    X = ModelSource(lm).activations(samples, lm.sites([f"mlp_post.{layer}"]))[f"mlp_post.{layer}"]
    y = samples.rows["label"].to_numpy(bool)
    A, B = X[y], X[~y]
    welch = bh_count(stats.ttest_ind(A, B, equal_var=False).pvalue)
    rng = np.random.default_rng(0)
    m = min(len(A), len(B))
    paired = [bh_count(stats.ttest_rel(A[rng.permutation(len(A))[:m]], B[rng.permutation(len(B))[:m]]).pvalue)
              for _ in range(L.pick(4, 20))]
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    a.plot(n["neuron"], n["t"], ".", ms=2)
    for thr, style, name in ((bh_t, "--", "BH q < 0.05"), (bonf_t, ":", "Bonferroni")):
        if thr:
            a.axhline(thr, color="C3", ls=style, label=name)
            a.axhline(-thr, color="C3", ls=style)
    a.set_xlabel(f"neuron of mlp_post.{layer}")
    a.set_ylabel("t (clustered by word type x paragraph)")
    a.set_title(f"{len(sig)} significant of {len(n)}" + ("" if len(sig) else ": none significant"), fontsize=8)
    a.legend(fontsize=7)
    b.boxplot([paired], positions=[0], widths=0.5)
    b.plot([1], [welch], "o", label="Welch")
    b.plot([2], [len(sig)], "s", label="lamina (clustered)")
    b.set_xticks([0, 1, 2], ["paired\n(arbitrary)", "Welch", "clustered"], fontsize=7)
    b.set_ylabel("BH-significant neurons")
    L.figure(fig, "t_per_neuron")
    summary = {"layer": layer, "n_neurons": len(n), "n_significant_clustered": len(sig), "bh_threshold_t": bh_t,
               "bonferroni_threshold_t": bonf_t, "n_significant_welch": welch,
               "null_count_high": result.laminar["null_count_high"].iloc[0],
               "n_significant_arbitrary_pairing": paired, "test": result.settings["test"]}
    print(f"clustered {len(sig)}, Welch {welch}, arbitrary pairing {min(paired)}-{max(paired)} over "
          f"{len(paired)} orderings")
    return L.finish(summary, look="the t values beyond the dashed threshold; the paired test's spread over "
                                  "orderings against one Welch / clustered count",
                    differs="the course paired word i of each list arbitrarily (ttest_rel): the count changes "
                            "with the word order. Welch treats the lists as independent samples; lamina "
                            "also clusters by word type x paragraph")


if __name__ == "__main__":
    main()
