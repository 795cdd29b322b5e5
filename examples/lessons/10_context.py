"""Context modulation: the same word alone and in a sentence, and with and without a leading space.

    python examples/tuning_context.py

For each word (the built-in dental and household words, each with a sentence that holds it), the MLP
activation vector at the word's last sub-token is correlated across conditions, per layer. The baseline
correlates two different words alone: what any two tokens share at that layer.
"""
import lamina
from lamina.analyses.context_lessons import context_effect

lm = lamina.load()
result = context_effect(lm, site="mlp_post")
print(result.per_layer.pivot(index="layer", columns="comparison", values="mean_r").round(3).to_string())
print("split with a leading space:", result.settings["multi_token_with_space"])
