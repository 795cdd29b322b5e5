"""Grammar tuning: which MLP neurons tell nouns from verbs, layer by layer, on the embedded model.

    python examples/tuning_grammar.py

Same as `lamina tune --contrast nouns-verbs --max-tokens 8000 --max-per-group 300 --out lamina-out/tune-grammar`.
Each spaCy NOUN / VERB word of the built-in corpus is one sample, read at its last sub-token; two-way cluster-robust OLS (word type x paragraph) per
neuron, BH FDR within each layer, 100 label permutations for the null of the count of significant neurons.
"""
import lamina
from lamina.analyses.contrasts import nouns_verbs
from lamina.analyses.tuning import tune
from lamina.analyses.tuning_controls import run_controls
from lamina.report.tuning_report import write_tuning

lm = lamina.load()
samples = nouns_verbs(lm.tokenizer, max_tokens=8000, max_per_group=300)
result = tune(lm, samples, site="mlp_post", rank_by=("mean_diff",))
run_controls(lm, samples, result, site="mlp_post")  # the same on a random-weights model of the same shape
print(result.settings["statement"])
print(result.laminar[["layer", "n_significant", "n_significant_occurrence", "null_count_high", "best_neuron",
                      "best_t", "best_cv_balanced_accuracy", "best_cv_balanced_accuracy_null_max", "probe_best_auc",
                      "probe_best_auc_null_max", "token_eps2_top"]].to_string(index=False))
print(result.controls.to_string(index=False))
print(result.top.head(10).to_string(index=False))
write_tuning(result, "lamina-out/tune-grammar")
