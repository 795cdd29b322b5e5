"""Logistic regression vs the t-test: do the two single-neuron tests pick the same neurons?

    python examples/tuning_logistic_vs_ttest.py

For nouns vs verbs in one middle layer: the occurrence-level Welch t p-value, the one-neuron logistic
regression's likelihood-ratio p (both treat occurrences as independent) and its cross-validated balanced
accuracy (folds grouped by word type), per neuron. The two p-values rank neurons almost identically (both
test a mean shift); the held-out accuracy says how usable the neuron is as a detector, which a tiny p on
thousands of samples does not. Neurons that separate the groups perfectly have no Wald p (NaN, flagged)
but a finite LR p.
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
print("Spearman rho of the Welch and LR p-values:", round(stats.spearmanr(n["p_occurrence"], n["logit_p"])[0], 3))
print("significant: clustered (primary)", int((n["q"] < 0.05).sum()), "| Welch", int((n["q_occurrence"] < 0.05).sum()),
      "| logistic LR", int((n["logit_q"] < 0.05).sum()),
      "| separable neurons", int(r.neurons["separable"].sum()))
print(n.sort_values("p").head(10)[["neuron", "t", "p", "t_occurrence", "logit_coef", "logit_p", "cv_balanced_accuracy",
                                   "cv_auc"]].to_string(index=False))
