"""The corpus commands as a user runs them: profile -> report, extract -> store check, bad input -> exit 2."""
import json

from typer.testing import CliRunner

from lamina.cli import app

runner = CliRunner()


def test_profile_then_report(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["verify", "--model", "random:llama", "--out", str(out / "verify")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["profile", "--model", "random:llama", "--max-tokens", "600", "--context", "64",
                                 "--out", str(out / "profile"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["reading"] for row in data["layers"]] == [f"resid_post.{L}" for L in range(4)]
    for name in ("profile.csv", "profile.parquet", "profile.png", "profile_dim_map.png", "profile.html"):
        assert (out / "profile" / name).stat().st_size > 0
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "Hidden-state map, measured" in html and "Laminar profile: resid_post" in html
    assert html.count("data:image/png;base64") == 3


def test_extract_and_store_check(tmp_path):
    store = tmp_path / "store"
    args = ["extract", "--model", "random:llama", "--sites", "resid_post.1,mlp_post", "--max-tokens", "300",
            "--context", "32", "--out", str(store)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["store", "check", str(store)]).exit_code == 0
    shard = next(store.glob("shard-*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:-4] + b"oops")
    result = runner.invoke(app, ["store", "check", str(store)])
    assert result.exit_code == 1 and "checksum mismatch" in result.output
    result = runner.invoke(app, args[:-2] + ["--context", "64", "--out", str(store)])
    assert result.exit_code == 2 and "refusing to mix" in result.output


def test_bad_input_is_one_line_exit_2(tmp_path):
    cases = [
        ["profile", "--model", "random:llama", "--corpus", str(tmp_path / "missing.txt")],
        ["profile", "--model", "random:llama", "--site", "logits"],
        ["extract", "--model", "random:llama", "--sites", "resid_pots.1", "--out", str(tmp_path / "s")],
        ["store", "check", str(tmp_path)],
        ["report", str(tmp_path / "nothing")],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and result.output.strip().startswith("error:"), result.output
