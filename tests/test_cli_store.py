"""extract -> top-examples --store / profile --store -> index, as a user runs them; bad input -> exit 2."""
import json

import pytest
from typer.testing import CliRunner

from lamina.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "store"
    result = runner.invoke(app, ["extract", "--model", "random:llama", "--sites", "resid_post,mlp_post.1", "--out",
                                 str(folder), "--max-tokens", "500", "--context", "32", "--store-dtype", "float32"])
    assert result.exit_code == 0, result.output
    return folder


def test_analyses_and_index_from_the_store(store, tmp_path):
    live = runner.invoke(app, ["top-examples", "--model", "random:llama", "-n", "mlp_post.1:4", "-k", "3", "--context",
                               "32", "--max-tokens", "500", "--out", str(tmp_path / "a"), "--json"])
    stored = runner.invoke(app, ["top-examples", "--store", str(store), "-n", "mlp_post.1:4", "-k", "3",
                                 "--out", str(tmp_path / "b"), "--json"])
    assert live.exit_code == stored.exit_code == 0, stored.output
    assert json.loads(live.stdout)["neurons"] == json.loads(stored.stdout)["neurons"]
    assert (tmp_path / "b" / "neuron_mlp_post.1_4.html").stat().st_size > 0
    profile = runner.invoke(app, ["profile", "--store", str(store), "--out", str(tmp_path / "p"), "--json"])
    assert profile.exit_code == 0, profile.output
    assert [r["reading"] for r in json.loads(profile.stdout)["layers"]] == [f"resid_post.{L}" for L in range(4)]
    index = runner.invoke(app, ["index", str(store), "-k", "4", "--sites", "mlp_post.1", "--json"])
    assert index.exit_code == 0, index.output
    assert json.loads(index.stdout)["sites"] == ["mlp_post.1"] and (store / "index" / "mlp_post.1.safetensors").exists()


def test_bad_input_is_one_line_and_exit_2(store, tmp_path):
    for args, message in [
        (["top-examples", "--store", str(store), "-n", "mlp_post.3:1"], "does not hold mlp_post.3; it holds"),
        (["profile", "--store", str(store), "--site", "attn_out"], "holds no attn_out site"),
        (["index", str(store), "--sites", "q.1"], "does not hold q.1"),
        (["index", str(tmp_path)], "is not an activation store"),
        (["browse", str(tmp_path)], "is not an activation store"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
