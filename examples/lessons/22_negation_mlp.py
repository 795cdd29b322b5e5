"""Negation in MLP neurons: the matched design (the same sentence with and without the negation).

    python examples/tuning_negation_mlp.py

Each pair is read at the first token after the edit ("The door was not open." / "The door was open.":
" open" in both), so token, topic and the text after the edit cancel, and the tokens before the edit are
identical: only the negation differs. Row i of the negated group is paired with row i of the affirmed
group: paired t (the pair is the unit), and the permutation null flips labels within pairs. The neutral
insertion control shows how much of the count is "a word was inserted" rather than negation.
"""
import lamina
from lamina.analyses.contrasts import negation
from lamina.analyses.tuning import tune
from lamina.analyses.tuning_controls import run_controls

lm = lamina.load()
samples = negation(lm.tokenizer)
result = tune(lm, samples, site="mlp_post", rank_by=("mean_diff",))
# controls: a random-weights model of the same shape, and a neutral word ("really") inserted where the negation is
run_controls(lm, samples, result, site="mlp_post")
print(result.settings["statement"])
print(result.laminar[["layer", "fraction_significant", "null_count_high", "best_neuron", "best_t",
                      "best_cv_balanced_accuracy", "best_cv_balanced_accuracy_null_max", "replication_r"]]
      .to_string(index=False))
print(result.controls.to_string(index=False))
