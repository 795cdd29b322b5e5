"""Lesson 22, negation in MLP neurons: the course's design (negation vs affirmation tokens in a long window)
beside lamina's matched pairs.

Question: do MLP neurons encode negation, or only the identity of the negation tokens?

    python examples/lessons/22_negation_mlp.py [--model M] [--quick] [--out DIR]

Course design: corpus windows of 101 tokens ending at a negation token (" not", " no", " never", " nothing",
" nor") or an affirmation token (" yes", " always", " sure", " also", " indeed", " certainly"), read at that
token, every window independent (Welch). The same windows with SEs clustered by the token read, and the
token-identity control: " not" against the other negation tokens, the same test. If the control counts as
many neurons as negation vs affirmation, the design measures which token is read, not negation.
lamina's design: each pair is read at the first token after the edit ("The door was not open." / "The door
was open.": " open" in both), so token, topic and the text after the edit cancel; paired t with the pair as
the unit, the permutation null flips labels within pairs, and a neutral word ("really") inserted where the
negation is shows how much of the count is "a word was inserted".
"""
import pandas as pd
from common import Lesson, laminar_plot

from lamina.analyses.tuning.contrasts import labels, negation
from lamina.analyses.tuning.controls import run_controls
from lamina.analyses.tuning.run import tune
from lamina.data.corpus import load_corpus

NEGATION = [" not", " no", " never", " nothing", " nor"]
AFFIRMATION = [" yes", " always", " sure", " also", " indeed", " certainly"]


def course_windows(lm, width: int, per_token: int) -> pd.DataFrame:
    """Corpus windows of `width` tokens that end at a negation or affirmation token (at most `per_token` each)."""
    tok = lm.tokenizer
    targets = {}
    for kind, words in (("negation", NEGATION), ("affirmation", AFFIRMATION)):
        for w in words:
            ids = tok(w, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                targets[ids[0]] = (kind, w)
    rows, seen = [], {}
    for doc in load_corpus():
        ids = tok(doc.text, add_special_tokens=False)["input_ids"]
        for p in range(width - 1, len(ids)):
            if ids[p] in targets and seen.get(ids[p], 0) < per_token:
                text = tok.decode(ids[p - width + 1: p + 1])
                if tok(text, add_special_tokens=False)["input_ids"][-1] != ids[p]:
                    continue                                   # re-tokenized differently: skip
                kind, w = targets[ids[p]]
                seen[ids[p]] = seen.get(ids[p], 0) + 1
                rows.append({"text": text, "kind": kind, "target": w.strip()})
    return pd.DataFrame(rows)


def count(lm, table_path, column, layers, permutations, unit):
    s = labels(lm.tokenizer, column, table=table_path, unit_columns=("target",), max_length=256)
    r = tune(lm, s, site="mlp_post", layers=layers, permutations=permutations, probes=False, n_examples=0,
             progress=False, unit=unit, reference_permutations=0, cv=2)   # few token types: 2 grouped folds
    return r


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    layers = L.layers(5)
    perms = L.permutations(3, 20)
    # lamina's matched design
    samples = negation(lm.tokenizer, max_per_group=L.pick(40, None))
    ours = tune(lm, samples, site="mlp_post", layers=layers, rank_by=("mean_diff",), permutations=perms,
                n_examples=0, progress=False, reference_permutations=0, probes=False)
    run_controls(lm, samples, ours, site="mlp_post", layers=layers, permutations=perms, probes=False)
    # the course's design, and its token-identity control
    table = course_windows(lm, width=L.pick(41, 101), per_token=L.pick(12, 25))
    table["not_vs_other"] = [("not" if t == "not" else "other negation") for t in table["target"]]
    path = L.out / "course_windows.csv"
    table.to_csv(path, index=False)
    neg = table[table["kind"] == "negation"]
    neg.to_csv(L.out / "negation_windows.csv", index=False)
    course = count(lm, path, "kind=negation", layers, perms, "occurrence")
    course_clustered = count(lm, path, "kind=negation", layers, perms, None)
    identity = count(lm, L.out / "negation_windows.csv", "not_vs_other=not", layers, perms, "occurrence")
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    laminar_plot(a, ours, "matched pairs (lamina)", "fraction_significant")
    ctl = ours.controls
    n_tested = ours.laminar.set_index("layer")["n_tested"]
    for column, name in (("n_significant_neutral_vs_affirmed", "control: 'really' inserted vs affirmed"),
                         ("n_significant_random_weights", "control: random-weights model")):
        if column in ctl:
            a.plot(ctl["layer"], ctl[column] / n_tested.loc[ctl["layer"]].to_numpy(), ":", label=name)
    a.set_ylabel("fraction of neurons significant")
    a.legend(fontsize=6)
    a.set_title("lamina: negated vs affirmed sentence, paired", fontsize=8)
    for r, name, style in ((course, "negation vs affirmation token (course, Welch)", "o-"),
                           (course_clustered, "same, clustered by token", "s--"),
                           (identity, "control: ' not' vs other negation tokens", "x:")):
        b.plot(r.laminar["layer"], r.laminar["fraction_significant"], style, label=name)
    b.set_xlabel("layer")
    b.set_ylabel("fraction of neurons significant")
    b.set_title(f"course design: {L.pick(41, 101)}-token windows", fontsize=8)
    b.legend(fontsize=6)
    L.figure(fig, "negation_designs")
    def frac(r):
        return r.laminar["fraction_significant"].round(4).tolist()
    summary = {"layers": ours.laminar["layer"].tolist(), "matched_pairs": frac(ours),
               "matched_null_count_high": ours.laminar["null_count_high"].tolist(),
               "matched_controls": ctl.to_dict(orient="records"),
               "course_welch": frac(course), "course_clustered_by_token": frac(course_clustered),
               "token_identity_control": frac(identity),
               "null_count_high": {"course_welch": course.laminar["null_count_high"].tolist(),
                                   "course_clustered_by_token": course_clustered.laminar["null_count_high"].tolist(),
                                   "token_identity_control": identity.laminar["null_count_high"].tolist()},
               "n_tested": {"matched": ours.laminar["n_tested"].tolist(),
                            "course": course.laminar["n_tested"].tolist()},
               "course_window_counts": table.groupby(["kind", "target"]).size().to_dict(),
               "matched_test": ours.settings["test"]}
    print(summary)
    return L.finish(summary, look="right: whether ' not' vs other negation tokens (no negation contrast at all) "
                                  "counts as many neurons as negation vs affirmation; left: the matched count "
                                  "against its null",
                    differs="the course compared negation tokens with affirmation tokens: different tokens in "
                            "different contexts, so token identity alone makes neurons significant (the control "
                            "shows it). lamina reads the same token in the same sentence with and without the "
                            "negation, paired")


if __name__ == "__main__":
    main()
