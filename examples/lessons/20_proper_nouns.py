"""Proper nouns: neurons that respond to spaCy PROPN words more than to common nouns.

    python examples/tuning_proper_nouns.py

Proper nouns are often split into several tokens and are rarer, so the report's confound balance (mean
character length and log corpus frequency of the token read, per group) and the `controlled_*` columns
(the contrast as a partial correlation controlling for both) matter here more than for nouns vs verbs.
"""
import lamina
from lamina.analyses.contrasts import proper_nouns
from lamina.analyses.tuning import tune
from lamina.analyses.tuning_controls import run_controls

lm = lamina.load()
samples = proper_nouns(lm.tokenizer, max_tokens=15000, max_per_group=300)
print(samples.describe(), *samples.notes, sep="\n")
result = tune(lm, samples, site="mlp_post", rank_by=("mean_diff",), n_examples=0)
run_controls(lm, samples, result, site="mlp_post")
print(result.settings["statement"])
print("confound balance:", result.settings["confound_balance"])
print(result.laminar[["layer", "n_significant", "n_significant_occurrence", "n_significant_controlled",
                      "null_count_high", "best_neuron", "best_cv_balanced_accuracy"]].to_string(index=False))
print(result.controls.to_string(index=False))
