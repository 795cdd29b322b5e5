"""Category-tuned neurons and their vocabulary projections: dental vs household words.

    python examples/tuning_category_projections.py

Find the neurons whose activation separates the built-in dental words from the household words (each word
in a carrier sentence), then project the strongest ones onto the vocabulary: which tokens drive them
(input side) and which next tokens they promote (output side).
"""
import lamina
from lamina.analyses.contrasts import category
from lamina.analyses.projections import project
from lamina.analyses.tuning import tune

lm = lamina.load()
result = tune(lm, category(lm.tokenizer), site="mlp_post", rank_by=("mean_diff",), n_examples=0)
print(result.settings["statement"])
for row in result.top.head(3).itertuples():
    print(f"\n{row.name}: t = {row.t:.2f}, q = {row.q:.2g}, CV balanced accuracy {row.cv_balanced_accuracy:.2f}")
    df = project(lm, row.name, k=8)
    for (side, view, direction), g in df.groupby(["side", "view", "direction"], sort=False):
        print(f"  {side:6} {view:22} {direction:10}", " ".join(repr(t) for t in g["token"]))
