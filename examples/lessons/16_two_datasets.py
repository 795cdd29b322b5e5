"""Lesson 16, two datasets: do the noun/verb neurons found in one half of the corpus replicate in the other?

Question: are the per-neuron noun/verb statistics concordant between two independent sets of documents,
and which words carry the agreement?

    python examples/lessons/16_two_datasets.py [--model M] [--quick] [--out DIR] [--layer L]

The built-in corpus is split into two halves by document; nouns vs verbs is tuned on each half separately
(clustered test, one layer). The scatter puts each neuron's t in half A against half B (with Spearman rho
and the overlap of significant sets); the per-word breakdown shows, for the best neuron of half A, its mean
activation per word type in A against B, for the word types seen in both halves.
"""
import numpy as np
from common import Lesson
from scipy import stats

from lamina.analyses.contrasts import nouns_verbs
from lamina.analyses.sample_activations import gather_activations
from lamina.analyses.tuning import tune
from lamina.data.corpus import load_corpus


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    docs = load_corpus()
    halves = {"A": docs[0::2], "B": docs[1::2]}
    res, acts, samples = {}, {}, {}
    site = lm.sites([f"mlp_post.{layer}"])
    for name, d in halves.items():
        samples[name] = nouns_verbs(lm.tokenizer, docs=d, max_tokens=L.pick(1200, 6000), max_per_group=L.pick(80, 300))
        res[name] = tune(lm, samples[name], site="mlp_post", layers=[layer], permutations=L.pick(3, 50),
                         probes=False, n_examples=0, progress=False, reference_permutations=0)
        acts[name] = gather_activations(lm, samples[name], site)[f"mlp_post.{layer}"]
    ta, tb = res["A"].neurons["t"].to_numpy(), res["B"].neurons["t"].to_numpy()
    ok = np.isfinite(ta) & np.isfinite(tb)
    rho = stats.spearmanr(ta[ok], tb[ok])[0]
    sa, sb = res["A"].neurons["significant"].to_numpy(), res["B"].neurons["significant"].to_numpy()
    best = int(np.nanargmax(np.abs(ta)))
    per_word = {}
    for name in halves:
        rows = samples[name].rows
        per_word[name] = (rows.assign(v=acts[name][:, best]).groupby(["word_type", "group"])["v"].mean())
    both = per_word["A"].to_frame("A").join(per_word["B"].to_frame("B"), how="inner").reset_index()
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.scatter(ta, tb, s=3, alpha=0.4)
    a.set_xlabel("t, documents A")
    a.set_ylabel("t, documents B")
    a.set_title(f"mlp_post.{layer}: Spearman rho {rho:.2f}; significant A {sa.sum()}, B {sb.sum()}, both "
                f"{(sa & sb).sum()}", fontsize=8)
    for g, gg in both.groupby("group"):
        b.scatter(gg["A"], gg["B"], s=10, label=g)
    for r in both.assign(s=np.abs(both["A"]) + np.abs(both["B"])).nlargest(8, "s").itertuples():
        b.annotate(r.word_type, (r.A, r.B), fontsize=6)
    b.set_xlabel(f"mean activation of neuron {best} per word type, A")
    b.set_ylabel("same word type, B")
    b.legend(fontsize=7)
    L.figure(fig, "concordance")
    word_r = float(np.corrcoef(both["A"], both["B"])[0, 1]) if len(both) > 2 else None
    summary = {"layer": layer, "n_samples": {k: len(v.rows) for k, v in samples.items()}, "spearman_t": rho,
               "n_significant": {"A": int(sa.sum()), "B": int(sb.sum()), "both": int((sa & sb).sum())},
               "best_neuron_A": best, "n_shared_word_types": len(both), "per_word_r": word_r}
    print(summary)
    return L.finish(summary, look="the t-vs-t cloud's diagonal trend, and whether the per-word means of the best "
                                  "neuron agree between the halves (word identity repeats across datasets)",
                    differs="the course compared two datasets by eye; here the rho of t and the overlap of the "
                            "significant sets are numbers, and the per-word breakdown shows the words that "
                            "carry the agreement")


if __name__ == "__main__":
    main()
