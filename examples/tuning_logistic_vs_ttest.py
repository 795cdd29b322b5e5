"""Logistic regression vs the t-test: do the two single-neuron tests pick the same neurons?

    python examples/tuning_logistic_vs_ttest.py

For nouns vs verbs in one middle layer: Welch's t p-value, the one-neuron logistic regression's Wald p and
its cross-validated balanced accuracy, per neuron. The two p-values rank neurons almost identically (both
test a mean shift); the held-out accuracy says how usable the neuron is as a detector, which a tiny p on
thousands of samples does not. Neurons that separate the groups perfectly have no Wald p (NaN, flagged).
"""
from scipy import stats

import lamina
from lamina.analyses.contrasts import nouns_verbs
from lamina.analyses.tuning import tune

lm = lamina.load()
r = tune(lm, nouns_verbs(lm.tokenizer, max_tokens=8000, max_per_group=400), site="mlp_post", layers="15",
         probes=False, n_examples=0)
n = r.neurons.dropna(subset=["p", "logit_p"])
print(r.settings["statement"])
print("Spearman rho of the t-test and Wald p-values:", round(stats.spearmanr(n["p"], n["logit_p"])[0], 3))
print("significant: t-test", int((n["q"] < 0.05).sum()), "| logistic", int((n["logit_q"] < 0.05).sum()),
      "| separable neurons", int(r.neurons["separable"].sum()))
print(n.sort_values("p").head(10)[["neuron", "t", "p", "logit_coef", "logit_p", "cv_balanced_accuracy",
                                   "cv_auc"]].to_string(index=False))
