"""Activation maximization and top examples on random:llama with a planted neuron of known answer.

Neuron mlp_post.1:7 gets the unit embedding of " cat" (GPT-2 id 3797) as its gate and up rows, so
silu(g) * g is large only where the residual points along " cat": gradient ascent must decode to " cat",
and the corpus examples that fire it most must be the " cat" tokens. Values are checked against a plain
PyTorch hook on down_proj's input, not against lamina's own capture.
"""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import lamina
import lamina.cli as cli
from lamina.analyses.neurons.discrete_search import discrete_search, mark_frontier
from lamina.analyses.neurons.maximize import (
    OptimizationDiverged,
    ascend,
    maximize,
    reproducibility,
    rescore,
    resolve_target,
)
from lamina.analyses.neurons.top_examples import top_examples
from lamina.data.corpus import Document
from lamina.errors import SiteError
from lamina.report.neuron_page import level, render_neuron_page

CAT, NEURON = 3797, "mlp_post.1:7"
TEXTS = ["The dog ran across the park and barked at the birds.", "My cat sat on the warm mat all afternoon.",
         "Rain fell on the roof of the old house.", "A black cat crossed the road at midnight.",
         "He bought bread, milk and eggs at the shop.", "The old cat and the dog slept side by side."]


@pytest.fixture(scope="module")
def planted():
    """A fresh random:llama (not the shared fixture model) with mlp_post.1:7 tuned to ' cat'."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscription on a shared machine
    lm = lamina.load("random:llama")
    with torch.no_grad():
        e = lm.model.model.embed_tokens.weight[CAT]
        mlp = lm.model.model.layers[1].mlp
        mlp.gate_proj.weight[7] = e / e.norm()
        mlp.up_proj.weight[7] = e / e.norm()
    yield lm
    torch.set_num_threads(threads)


def hf_neuron(lm, ids: list[int]) -> torch.Tensor:
    """mlp_post.1:7 at every position, read by a plain hook on down_proj's input: [t]."""
    seen = {}
    hook = lm.model.model.layers[1].mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    try:
        with torch.no_grad():
            lm.model(input_ids=torch.tensor([ids]))
    finally:
        hook.remove()
    return seen["x"][0, :, 7]


def test_gradient_ascent_recovers_planted_token(planted):
    result = maximize(planted, NEURON, seeds=3, steps=100, progress=False)
    best = result.best
    assert best["ids"][-1] == CAT                          # the last (scored) position decodes to " cat"
    assert best["decoded"][-1][0]["token"] == " cat" and best["decoded_is_init"] < 1  # it moved to " cat"
    assert best["rescored_activation"] == pytest.approx(float(hf_neuron(planted, best["ids"])[-1]), rel=1e-5)
    assert best["rescored_activation"] > 10 > max(hf_neuron(planted, [464, 3290, 4966]).tolist())  # "The dog ran"
    assert best["optimized_activation"] >= best["rescored_activation"]  # the soft vectors reach beyond any token
    data = json.loads(json.dumps(result.to_dict(), default=float))
    assert data["reproducibility"]["n_seeds"] == 3 and "vectors" not in data["runs"][0]


def test_projected_ascent_scores_real_tokens(planted):
    target = resolve_target(planted, NEURON)
    run = ascend(planted, target, steps=40, seed=1, projected=True, progress=False)
    assert run["optimized_activation"] == pytest.approx(run["rescored_activation"], rel=1e-4)
    assert run["rescored_activation"] == pytest.approx(float(hf_neuron(planted, run["ids"])[-1]), rel=1e-5)


def test_mean_position_and_direction_targets(planted):
    ids = [464, 3797, 3332, 319, 3797]                     # "The cat sat on cat"
    direction = torch.zeros(512)
    direction[7] = 3.0                                      # normalised to the unit vector of neuron 7
    expect = hf_neuron(planted, ids)
    for target, value in ((resolve_target(planted, NEURON, position="mean"), expect.mean()),
                          (resolve_target(planted, site="mlp_post.1", direction=direction), expect[-1])):
        assert rescore(planted, target, ids)["activation"] == pytest.approx(float(value), rel=1e-5)


def test_discrete_search_with_fluency(planted):
    target = resolve_target(planted, NEURON)
    start = [464, 3290, 4966, 625, 262]                    # "The dog ran over the"
    points = discrete_search(planted, target, start, lambdas=(0.0, 2.0), steps=6, top_k=16, batch=16,
                             progress=False)
    before = float(hf_neuron(planted, start)[-1])
    assert points[0]["activation"] > before               # lambda 0 only climbs
    for p in points:
        assert p["activation"] == pytest.approx(float(hf_neuron(planted, p["ids"])[-1]), rel=1e-5)
        with torch.no_grad():
            logp = planted.model(input_ids=torch.tensor([p["ids"]])).logits[0, :-1].log_softmax(-1)
        ce = -logp.gather(-1, torch.tensor(p["ids"][1:])[:, None]).mean()
        assert p["prompt_ce"] == pytest.approx(float(ce), rel=1e-4)


def test_frontier_and_reproducibility_on_constructed_inputs():
    pts = mark_frontier([{"activation": 5, "prompt_ce": 9}, {"activation": 3, "prompt_ce": 4},
                         {"activation": 2, "prompt_ce": 6}, {"activation": 5, "prompt_ce": 9.5}])
    assert [p["frontier"] for p in pts] == [True, True, False, False]
    v = torch.randn(3, 8)
    same = reproducibility([{1, 2, 3}] * 3, [v, v, v], [2.0, 2.0, 2.0])
    assert same["unique_tokens"] == 3 and same["mean_jaccard"] == 1.0
    assert same["mean_cosine"] == pytest.approx(1.0) and same["activation_std"] == 0.0
    e = torch.eye(4)
    r = reproducibility([{1, 2}, {2, 3}, {7}], [e[0], e[1], -e[0]], [1.0, 2.0, 6.0])
    assert r["unique_tokens"] == 4
    assert r["mean_jaccard"] == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert r["mean_cosine"] == pytest.approx((0 - 1 + 0) / 3)
    assert (r["activation_mean"], r["activation_min"], r["activation_max"]) == (3.0, 1.0, 6.0)
    assert r["activation_std"] == pytest.approx(torch.tensor([1.0, 2.0, 6.0]).std().item())  # ddof=1


def test_top_examples_find_the_planted_token(planted):
    docs = [Document(f"d{i}", t) for i, t in enumerate(TEXTS)]
    result = top_examples(planted, [NEURON, "mlp_post.2:3"], docs, k=3, context=8, batch_size=4, n_random=5,
                          n_quantiles=4, per_quantile=2, progress=False)
    n = result.neurons[NEURON]
    assert [e["token"] for e in n["top"]] == [" cat"] * 3
    assert sorted(e["doc"] for e in n["top"]) == ["d1", "d3", "d5"]  # one per document, the cat documents
    assert n["argmax_tally"][0]["token"] == " cat"
    assert n["n_tokens"] == sum(len(planted.tokenizer(t)["input_ids"]) for t in TEXTS)
    for e in n["top"] + n["random"]:
        assert e["activations"][e["focus"]] == pytest.approx(e["value"], rel=1e-6)
    top = n["top"][0]
    doc = int(top["doc"][1:])
    ids = planted.tokenizer(TEXTS[doc])["input_ids"]
    window = ids[(top["position"] // 8) * 8:][:8]             # the window that counted the token
    assert top["value"] == pytest.approx(float(hf_neuron(planted, window)[top["position"] % 8]), rel=1e-5)
    assert n["max"] == top["value"] and len(n["random"]) == 5
    edges = [(b["lo"], b["hi"]) for b in n["quantiles"]]
    assert all(lo <= hi for lo, hi in edges) and edges[-1][1] == n["max"]
    assert all(b["lo"] <= e["value"] <= b["hi"] for b in n["quantiles"] for e in b["examples"])
    html = render_neuron_page(result.model, n)
    assert "Top 3 examples" in html and '<span class="mark">·</span>cat' in html
    assert (level(5.0, 10.0), level(-1.0, 10.0), level(10.0, 10.0)) == (5, 0, 10)


def test_bad_input(planted):
    with pytest.raises(SiteError, match="out of range; mlp_post.1 has neurons 0-511"):
        resolve_target(planted, "mlp_post.1:512")
    with pytest.raises(SiteError, match="only sites inside a block can be maximized .*resid_post"):
        resolve_target(planted, "final_norm.scale:0")
    with pytest.raises(SiteError, match="cannot maximize logits"):
        resolve_target(planted, "logits:5")


def test_exploding_activation_stops_with_the_step(planted):
    target = resolve_target(planted, NEURON)
    calls = []

    def explode(module, args, output):
        calls.append(1)
        return output * float("inf") if len(calls) > 3 else output

    hook = planted.model.model.layers[1].mlp.act_fn.register_forward_hook(explode)
    try:
        with pytest.raises(OptimizationDiverged, match="at step 3 of 50"):
            ascend(planted, target, steps=50, progress=False)
    finally:
        hook.remove()


def test_cli(planted, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.neurons, "load", lambda model, seed, *device_dtype: planted)
    runner = CliRunner()
    out = tmp_path / "neurons"
    r = runner.invoke(cli.app, ["maximize", "-n", NEURON, "--steps", "30", "--seeds", "2", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["target"] == NEURON
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in TEXTS))
    r = runner.invoke(cli.app, ["top-examples", "-n", NEURON, "-c", str(tmp_path / "docs.jsonl"), "-k", "3",
                                "--context", "8", "-o", str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "neuron_mlp_post.1_7.html").read_text()
    assert "Gradient ascent vs the best dataset example" in page and "re-scored / dataset max" in page
    (tmp_path / "empty.txt").write_text("  \n")
    bad = [["maximize", "-n", "mlp_post.1:9999"], ["maximize", "-n", "final_norm.scale:0"],
           ["top-examples", "-n", NEURON, "-c", str(tmp_path / "empty.txt")], ["maximize", "-n", NEURON, "--steps", "0"]]
    for args in bad:
        r = runner.invoke(cli.app, args + ["-o", str(out)])
        assert r.exit_code == 2, (args, r.output)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:"), r.stderr


def test_seed_agreement_comes_with_its_initial_baseline(planted):
    """initial_mean_cosine: the mean pairwise cosine of the seeds' starting embedding rows, by hand."""
    import itertools

    lm = planted
    result = maximize(lm, NEURON, seeds=3, steps=1, progress=False)
    E = lm.model.get_input_embeddings().weight.detach().double()
    starts = [E[r["init_ids"]].flatten() for r in result.runs]
    cos = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in itertools.combinations(starts, 2)]
    assert result.reproducibility["initial_mean_cosine"] == pytest.approx(sum(cos) / len(cos), rel=1e-9)
    assert result.reproducibility["initial_mean_jaccard"] <= 1.0
