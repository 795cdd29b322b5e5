"""Reproducibility of gradient ascent: the same neuron from several random starts.

    python examples/maximize_reproducibility.py

Few shared tokens (low Jaccard) and low cosine between the optimised vectors mean each seed found its
own solution; the spread of the re-scored activations says how much any single run can be trusted.
"""
import lamina
from lamina.analyses.maximize import maximize

lm = lamina.load()
result = maximize(lm, "mlp_post.15:933", seeds=4, steps=100)
for run in result.runs:
    print(f"seed {run['seed']}: {run['text']!r:45} optimised {run['optimized_activation']:8.2f} "
          f"re-scored {run['rescored_activation']:6.3f}")
rep = result.reproducibility
print(f"{rep['unique_tokens']} unique decoded tokens over {rep['n_seeds']} seeds; mean Jaccard "
      f"{rep['mean_jaccard']:.3f}, mean cosine {rep['mean_cosine']:.3f}; re-scored activation "
      f"{rep['activation_mean']:.3f} +- {rep['activation_std']:.3f} (min {rep['activation_min']:.3f}, "
      f"max {rep['activation_max']:.3f})")
print(f"{rep['decoded_is_init']:.0%} of the decoded tokens are the random tokens the vectors started from")
