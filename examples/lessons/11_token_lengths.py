"""Token lengths: activation histograms by length group and per-neuron length correlations per layer.

    python examples/tuning_token_lengths.py

Every corpus token is a sample; its label is its character length. The test is the partial correlation
of each neuron with length controlling for log corpus frequency (short tokens are frequent ones). The
lessons: histograms of activations for tokens below, at and above the median length, and the spread of
per-neuron Pearson r with length per layer.
"""
import lamina
from lamina.analyses.contrasts import token_length
from lamina.analyses.tuning import tune
from lamina.analyses.tuning_controls import run_controls
from lamina.report.tuning_report import write_tuning

lm = lamina.load()
samples = token_length(lm.tokenizer, max_tokens=6000, max_per_group=2000)
result = tune(lm, samples, site="mlp_post")
run_controls(lm, samples, result, site="mlp_post")
print(result.settings["statement"])
print(result.lessons["r_quantiles"].round(3).to_string(index=False))
print(result.laminar[["layer", "n_significant", "n_significant_occurrence", "null_count_high", "best_neuron",
                      "best_r"]].to_string(index=False))
print(result.controls.to_string(index=False))
write_tuning(result, "lamina-out/tune-token-length")  # length_lessons.png holds the histograms
