"""Lesson 10, context: the same word alone and in a sentence, with and without a leading space, and
generated text token by token.

Question: how much of a word's MLP activation vector is the word itself, and how much its context?

    python examples/lessons/10_context.py [--model M] [--quick] [--out DIR]

Part 1 (the course's design, corrected): each built-in dental / household word "alone" and in a sentence
that holds it; the activation vector at the word's last sub-token is correlated across conditions per
layer, beside the baseline of two different words alone. "Alone" is read twice: as the course did (the
word is the whole input, so with no BOS it sits at position 0, the attention sink, where every token looks
alike and two different words correlate highly), and after a neutral carrier prefix, so nothing sits at 0.
Part 2 (the generated-text test): the model writes a continuation; each generated token is then read in
that context and alone (after the same carrier), beside a different generated token alone.
"""
import numpy as np
from common import Lesson

from lamina.analyses.tuning.context_lessons import context_effect, default_context_items

CARRIER = "A word:\n"
PROMPT = "The lighthouse keeper opened the door and"


def generated_test(lm, n_new: int, carrier: str, site: str) -> list[dict]:
    """Generate greedily, then correlate each generated token's vector in context with the token alone."""
    import torch

    enc = lm.tokenize([PROMPT])
    with torch.no_grad():
        out = lm.model.generate(**enc, max_new_tokens=n_new, do_sample=False,
                                pad_token_id=lm.tokenizer.eos_token_id or 0)
    ids = out[0].tolist()
    start = enc["input_ids"].shape[1]
    new = [(p, ids[p]) for p in range(start, len(ids)) if lm.tokenizer.decode([ids[p]]).strip()]
    full = lm.capture({"input_ids": out}, [site])
    alone_texts = [carrier + lm.tokenizer.decode([t]) for _, t in new]
    batch = lm.tokenize(alone_texts)
    alone = lm.capture(batch, [site])
    last = batch["attention_mask"].sum(1) - 1
    rows = []
    for L in range(lm.n_layers):
        ctx = full[f"{site}.{L}"][0].flatten(1).float().numpy()
        al = alone[f"{site}.{L}"].flatten(2).float().numpy()
        A = np.stack([al[b, int(last[b])] for b in range(len(new))])
        for b, (p, _) in enumerate(new):
            rows.append({"layer": L, "token": lm.tokenizer.decode([new[b][1]]),
                         "r_context_vs_alone": np.corrcoef(ctx[p], A[b])[0, 1],
                         "r_other_alone": np.corrcoef(A[b], A[(b + 1) % len(new)])[0, 1]})
    return rows, lm.tokenizer.decode(ids[start:])


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm, site = L.lm, "mlp_post"
    items = default_context_items(L.pick(6, 40))
    course = context_effect(lm, items, site=site).per_layer
    ours = context_effect(lm, items, site=site, carrier=CARRIER).per_layer
    gen_rows, generated = generated_test(lm, L.pick(8, 30), CARRIER, site)
    import pandas as pd

    gen = pd.DataFrame(gen_rows).groupby("layer")[["r_context_vs_alone", "r_other_alone"]].mean()
    print(f"generated: {generated!r}")
    plt = L.plt()
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for a, table, title in ((ax[0], course, "course: word alone at position 0"),
                            (ax[1], ours, f"alone after the carrier {CARRIER!r}")):
        for comp, g in table.groupby("comparison", sort=False):
            a.plot(g["layer"], g["mean_r"], "o-", ms=3, label=comp)
        a.set_title(title, fontsize=8)
        a.set_xlabel("layer")
        a.legend(fontsize=6)
    ax[0].set_ylabel("mean Pearson r across neurons")
    ax[2].plot(gen.index, gen["r_context_vs_alone"], "o-", ms=3, label="generated token: in context vs alone")
    ax[2].plot(gen.index, gen["r_other_alone"], "s--", ms=3, label="two different generated tokens alone")
    ax[2].set_title("generated-text test", fontsize=8)
    ax[2].set_xlabel("layer")
    ax[2].legend(fontsize=6)
    L.figure(fig, "context")

    def table(df):
        return {c: g["mean_r"].round(4).tolist() for c, g in df.groupby("comparison", sort=False)}

    mid = L.middle_layer()
    def pick(df, c):
        return float(df[(df["layer"] == mid) & (df["comparison"] == c)]["mean_r"].iloc[0])
    base, space = "two different words alone (baseline)", "leading space vs none (alone)"
    summary = {"site": site, "carrier": CARRIER, "n_words": len(items), "generated": generated,
               "course_design": table(course), "carrier_design": table(ours),
               "generated_test": {k: v.round(4).tolist() for k, v in gen.items()},
               "middle_layer": mid,
               "middle_layer_r": {"course_baseline": pick(course, base), "course_space": pick(course, space),
                                  "carrier_baseline": pick(ours, base), "carrier_space": pick(ours, space),
                                  "generated_context_vs_alone": float(gen["r_context_vs_alone"].iloc[mid]),
                                  "generated_other_alone": float(gen["r_other_alone"].iloc[mid])}}
    print(summary["middle_layer_r"])
    return L.finish(summary, look="left: at position 0 two different words correlate as much as one word with "
                                  "and without a space; middle: with the carrier the baseline falls below; right: "
                                  "a generated token in context vs alone, against two different tokens",
                    differs="the course read each word as the whole input; with no BOS it sits at position 0 "
                            "(the attention sink), where every token's vector is alike, so two different "
                            "words correlate highly. lamina reads both, and a carrier prefix is the default")


if __name__ == "__main__":
    main()
