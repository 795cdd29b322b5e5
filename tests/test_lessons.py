"""Every course lesson in examples/lessons/ runs end to end on a random model with --quick, and writes its
figures and a summary.json whose numbers are sane. The fast lessons run by default; the ones that tune
whole layers (minutes on a shared CPU) are marked slow."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "examples" / "lessons"
FILES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
FAST = {"05", "06", "07", "10", "17", "18"}


def _module(path: Path):
    sys.path.insert(0, str(LESSONS))
    try:
        spec = importlib.util.spec_from_file_location(f"lesson_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(LESSONS))
    return module


def run_lesson(path: Path, out: Path) -> dict:
    module = _module(path)
    sys.path.insert(0, str(LESSONS))
    try:
        module.main(["--quick", "--model", "random:llama", "--out", str(out)])
    finally:
        sys.path.remove(str(LESSONS))
    return json.loads((out / "summary.json").read_text())


def test_all_23_lessons_exist():
    assert [int(p.name[:2]) for p in FILES] == list(range(1, 24))


CHECKS = {  # lesson -> a value its summary must hold (known by construction)
    "05": lambda s: len(s["tokens"]) > 5,   # its correlations: recomputed in REFERENCES
    # the residual identity H(L+1) = H(L) + attn_out + mlp_out holds to float precision in every block
    "06": lambda s: s["max_relative_reconstruction_error"] < 1e-5 and len(s["blocks"]) == 4,
    # hooks equal hidden_states[L+1] in every block but the last, and the final norm closes the last
    "07": lambda s: max(s["per_block_max_abs_diff"][:-1]) == 0 and s["per_block_max_abs_diff"][-1] > 0
                    and s["last_block_after_final_norm"] < 1e-5 and s["hidden_last_normalized"],
    # the simulated slope is near the true one (d = 1) and separation is detected
    "17": lambda s: abs(s["slope"] - s["true_slope"]) < 4 * s["slope_se"] and s["separation"]["note"],
    # no separation at d = 0, and the t and LR p-values agree where the groups overlap
    "18": lambda s: s["fraction_separated"][0] == 0 and s["spearman_p_t_vs_p_lr_d_le_1_5"] > 0.95,
    # both designs of lesson 10 give the three comparisons for every layer, and the generated test its two
    "10": lambda s: all(len(s[k]) == 3 and all(len(v) == 4 for v in s[k].values())
                        for k in ("course_design", "carrier_design")) and len(s["generated_test"]) == 2,
    # a "best" neuron is named only when one passes the test; the random-weights control is reported
    "08": lambda s: (s["best_neuron"] == "none significant") == (s["n_significant"] == 0)
                    and 0 <= s["n_significant_random_weights"] <= s["n_neurons"],
    "15": lambda s: (s["best_neuron"] == "none significant") == (s["n_significant"] == 0),
    "21": lambda s: s["significant"] == (s["q"] < 0.05),
    # the concordance comes with both nulls (shared word-type labels, independent shuffles)
    "16": lambda s: min(s["n_null_draws"]) > 0 and s["null_spearman_shared_word_labels_2.5_50_97.5"] is not None,
    "23": lambda s: all(b == "none significant" or ":" in b for v in s["sites"].values() for b in v["best_neuron"]),
}


def _lesson_05_reference(s: dict, out: Path) -> None:
    """The token-by-token correlations, from a hook of our own on the MLP's down projection (mlp_post is its
    input) in HF's forward pass, through numpy's corrcoef."""
    import numpy as np
    import torch

    import lamina

    text = _module(next(p for p in FILES if p.name.startswith("05"))).TEXT
    lm = lamina.load("random:llama")
    down = lm.model.get_submodule(f"{lm.anatomy.block(s['layer'])}.{lm.anatomy.family.mlp_down}")
    seen = []
    handle = down.register_forward_pre_hook(lambda module, args: seen.append(args[0][0].detach().double()))
    try:
        with torch.no_grad():
            lm.model(**lm.tokenize([text]))
    finally:
        handle.remove()
    R = np.corrcoef(seen[0].numpy())                                       # [tokens, tokens]
    n = len(R)
    i, j = n - 3, n - 2
    assert len(s["tokens"]) == n
    assert s["r_pair"] == pytest.approx(R[i, j], abs=1e-5)
    assert s["mean_r_offdiag"] == pytest.approx(R[~np.eye(n, dtype=bool)].mean(), abs=1e-5)
    assert s["mean_r_first_vs_rest"] == pytest.approx(R[0, 1:].mean(), abs=1e-5)


def _lesson_16_reference(s: dict, out: Path) -> None:
    """The concordance of the two halves' t, from the joined table the lesson wrote, through scipy."""
    import pandas as pd
    from scipy import stats

    joined = pd.read_csv(out / "tune_compare" / "joined_neurons.csv")
    ok = joined[["stat_a", "stat_b"]].notna().all(axis=1)
    a, b = joined.loc[ok, "stat_a"], joined.loc[ok, "stat_b"]
    assert s["spearman_t"] == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-9)
    assert s["pearson_t"] == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-9)
    k = s["n_significant"]
    want_p = stats.hypergeom.sf(k["both"] - 1, len(joined), k["A"], k["B"])
    assert s["p_overlap_hypergeometric"] == pytest.approx(want_p, rel=1e-9)


REFERENCES = {"05": _lesson_05_reference, "16": _lesson_16_reference}  # values recomputed independently


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=() if p.name[:2] in FAST else pytest.mark.slow)
                                  for p in FILES])
def test_lesson_runs(path, tmp_path):
    s = run_lesson(path, tmp_path)
    assert s["lesson"] == int(path.name[:2]) and s["quick"] and s["question"].endswith("?")
    assert s["figures"], "a lesson writes at least one figure"
    for name in s["figures"]:
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    check = CHECKS.get(path.name[:2])
    if check:
        assert check(s), s
    if path.name[:2] in REFERENCES:
        REFERENCES[path.name[:2]](s, tmp_path)


def test_clean_makes_json_safe():
    sys.path.insert(0, str(LESSONS))
    try:
        from common import clean
    finally:
        sys.path.remove(str(LESSONS))
    import numpy as np

    out = clean({"a": np.float32(1.5), "b": [np.nan, math.inf], "c": np.arange(2), "d": np.bool_(True)})
    assert json.dumps(out) == '{"a": 1.5, "b": [null, null], "c": [0, 1], "d": true}'
