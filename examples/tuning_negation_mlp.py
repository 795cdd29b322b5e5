"""Negation in MLP neurons: the matched design (the same sentence with and without the negation).

    python examples/tuning_negation_mlp.py

Each pair is read at the first token after the edit ("The door was not open." / "The door was open.":
" open" in both), so token, topic and the text after the edit cancel, and the tokens before the edit are
identical: only the negation differs. Row i of the negated group is paired with row i of the affirmed
group: paired t, and the permutation null flips labels within pairs.
"""
import lamina
from lamina.analyses.contrasts import negation
from lamina.analyses.tuning import tune

lm = lamina.load()
result = tune(lm, negation(lm.tokenizer), site="mlp_post", rank_by=("mean_diff",))
print(result.settings["statement"])
print(result.laminar[["layer", "fraction_significant", "null_high", "best_neuron", "best_t",
                      "best_cv_balanced_accuracy", "replication_r"]].to_string(index=False))
