"""`lamina report` over the real --out folders of every verb, made by the verbs themselves on random:llama: each
gets its section, with its figure and the key numbers of its own result files."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app

runner = CliRunner()
MODEL = ["--model", "random:llama"]
TUNE = ["tune", "--contrast", "negation", *MODEL, "--layers", "1", "--permutations", "0", "--no-probes",
        "--max-per-group", "20", "--reference-permutations", "0"]


def run(args):
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    (root / "docs.txt").write_text("The cat sat on the mat and looked at the door.\n\nA dog ran past the house "
                                   "and barked at the birds in the tall tree.\n")
    run(["logit-lens", *MODEL, "--text", "The cat sat on the mat", "--out", str(root / "lens")])
    run(["patch", *MODEL, "--clean", "The cat sat", "--corrupt", "The dog sat", "--out", str(root / "patch")])
    run(["steer", *MODEL, "--neuron", "mlp_post.1:3", "--multipliers", "0,2", "--max-tokens", "64", "--corpus",
         str(root / "docs.txt"), "--prompt", "The door was", "--prompt", "The cat was", "--out", str(root / "steer")])
    run(["ablate", *MODEL, "--site", "mlp_post.1", "--neurons", "0-3", "--max-tokens", "64", "--corpus",
         str(root / "docs.txt"), "--out", str(root / "ablate")])
    run([*TUNE, "--seed", "0", "--out", str(root / "tune0")])
    run([*TUNE, "--seed", "1", "--out", str(root / "tune1")])
    run(["tune-compare", str(root / "tune0"), str(root / "tune1"), "--out", str(root / "compare")])
    run(["report", str(root)])
    return root, (root / "report.html").read_text()


def section(page: str, heading: str) -> str:
    """The HTML of one section: from its heading to the next one."""
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start:end if end > 0 else None]


def test_every_verb_has_its_section(results):
    _, page = results
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    for h in ("Logit lens (lamina logit-lens)", "Activation patching (lamina patch)", "Steering (lamina steer)",
              "Ablation (lamina ablate)", "Two tune runs compared (lamina tune-compare)"):
        assert h in headings, headings
    assert "tune0/tuning.html" in page  # tune's own page, linked


def test_sections_show_the_figures_and_the_numbers_of_the_results(results):
    root, page = results
    lens = section(page, "Logit lens (lamina logit-lens)")
    layers = pd.read_csv(root / "lens" / "logit_lens_layers.csv")
    assert lens.count("data:image/png;base64,") == 2 and f"{layers.kl.iloc[0]:.4g}" in lens

    patch = json.loads((root / "patch" / "result.json").read_text())
    effect = np.array([[np.nan if v is None else v for v in row] for row in patch["effect"]], dtype=float)
    i, p = np.unravel_index(np.nanargmax(effect), effect.shape)
    text = section(page, "Activation patching (lamina patch)")
    assert f"{effect[i, p]:.3f}, is at layer {patch['layers'][i]}, position {patch['positions'][p]}" in text
    assert text.count("data:image/png;base64,") == 1

    steer = json.loads((root / "steer" / "result.json").read_text())
    text = section(page, "Steering (lamina steer)")
    assert f"multiplier x {steer['scale']:.3g}" in text and text.count("data:image/png;base64,") == 1
    assert text.count("</tr>") == 1 + len(steer["sweep"]) == 3    # header + one row per multiplier
    assert "<th>multiplier</th>" in text

    ablate = json.loads((root / "ablate" / "result.json").read_text())
    text = section(page, "Ablation (lamina ablate)")
    assert f"{ablate['delta_loss']['value']:+.4g}" in text and f"over {ablate['n_tokens']} tokens" in text

    cmp = json.loads((root / "compare" / "comparison.json").read_text())
    text = section(page, "Two tune runs compared (lamina tune-compare)")
    assert f"Pearson r {cmp['overall']['pearson_r']:.3f}" in text and text.count("data:image/png;base64,") == 1
    assert f"significant in both {cmp['overall']['overlap']}" in text
