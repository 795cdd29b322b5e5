"""`lamina tune-compare` on constructed tune-run folders whose concordance is known by construction."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from lamina.analyses.tuning.compare import compare_tune_runs, compare_tunes, concordance
from lamina.cli import app
from lamina.errors import InputError


def neurons(t, sig, layers=(0, 1), site="mlp_post"):
    n = len(t) // len(layers)
    layer = np.repeat(layers, n)
    idx = np.tile(np.arange(n), len(layers))
    return pd.DataFrame({"layer": layer, "neuron": idx, "name": [f"{site}.{L}:{i}" for L, i in zip(layer, idx)],
                         "t": np.asarray(t, float), "significant": np.asarray(sig, bool)})


def write_run(folder, df, contrast="nouns-verbs"):
    folder.mkdir()
    df.to_csv(folder / "neurons.csv", index=False)
    (folder / "tuning.json").write_text(json.dumps({"settings": {"contrast": contrast, "site": "mlp_post"}}))
    return folder


rng = np.random.default_rng(0)
T = rng.normal(size=200)


def test_identical_runs_agree_perfectly_and_the_overlap_is_the_whole_set():
    sig = np.abs(T) > 1.5
    c = compare_tunes(neurons(T, sig), neurons(T, sig))
    o = c.overall
    assert o["pearson_r"] == pytest.approx(1) and o["spearman_rho"] == pytest.approx(1)
    assert o["overlap"] == o["n_sig_a"] == o["n_sig_b"] == sig.sum() and o["jaccard"] == 1
    assert o["sign_agreement"] == 1 and list(c.per_layer["layer"]) == [0, 1]
    assert c.per_layer["n_neurons"].tolist() == [100, 100]


def test_values_match_independent_references():
    tb = 0.5 * T + rng.normal(size=200)
    sa, sb = np.abs(T) > 1.2, np.abs(tb) > 1.2
    o = concordance(T, tb, sa, sb)
    assert o["pearson_r"] == pytest.approx(np.corrcoef(T, tb)[0, 1])
    assert o["spearman_rho"] == pytest.approx(pd.Series(T).corr(pd.Series(tb), method="spearman"))
    k = int((sa & sb).sum())
    table = [[k, int((sa & ~sb).sum())], [int((~sa & sb).sum()), int((~sa & ~sb).sum())]]
    assert o["overlap"] == k and o["p_overlap"] == pytest.approx(stats.fisher_exact(table, "greater")[1])
    assert o["expected_overlap"] == pytest.approx(sa.sum() * sb.sum() / 200)
    assert o["jaccard"] == pytest.approx(k / (sa | sb).sum())


def test_opposite_signs_and_disjoint_sets():
    sa = np.arange(200) < 20
    o = concordance(T, -T, sa, ~sa & (np.arange(200) < 40))
    assert o["spearman_rho"] == pytest.approx(-1) and o["overlap"] == 0 and o["p_overlap"] == 1.0
    both = np.arange(200) < 10
    assert concordance(T, -T, both, both)["sign_agreement"] == 0


def test_runs_join_on_the_neuron_name_and_count_the_unmatched(tmp_path):
    a = write_run(tmp_path / "half-a", neurons(T, np.abs(T) > 1.5))
    b_df = neurons(T[:100] * 2, np.abs(T[:100]) > 1.5, layers=(1,))       # only layer 1, with layer 0's values
    b = write_run(tmp_path / "half-b", b_df)
    c = compare_tune_runs(a, b)
    assert c.per_layer["layer"].tolist() == [1] and c.settings["unmatched"] == {"half-a": 100, "half-b": 0}
    # layer 1 of A holds T[100:], B's layer 1 holds T[:100] (independent draws): rho near 0
    assert abs(c.overall["spearman_rho"]) < 0.3
    assert c.settings["runs"]["half-a"]["contrast"] == "nouns-verbs"


def test_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        compare_tune_runs(tmp_path / "nothing", tmp_path)
    with pytest.raises(InputError, match="neurons.parquet"):
        compare_tune_runs(tmp_path, tmp_path)
    a = write_run(tmp_path / "a", neurons(T, T > 1))
    b = write_run(tmp_path / "b", neurons(T, T > 1, site="q"))
    with pytest.raises(InputError, match="share no neuron"):
        compare_tune_runs(a, b)
    with pytest.raises(InputError, match="no column"):
        compare_tune_runs(a, a, statistic="d")


def test_cli_prints_json_and_writes_the_figure(tmp_path):
    a = write_run(tmp_path / "a", neurons(T, np.abs(T) > 1.5))
    b = write_run(tmp_path / "b", neurons(T + 0.1 * rng.normal(size=200), np.abs(T) > 1.4))
    runner = CliRunner()
    r = runner.invoke(app, ["tune-compare", str(a), str(b), "--json", "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["overall"]["spearman_rho"] > 0.95 and len(out["layers"]) == 2
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(tmp_path / "cmp" / "joined_neurons.csv").shape[0] == 200
    r = runner.invoke(app, ["tune-compare", str(a), str(tmp_path / "missing")])
    assert r.exit_code == 2 and "missing does not exist" in r.output
