"""`lamina tune --store`: the tuning statistics from a store of the contrast's texts equal those of the model."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.analyses.sources.store import StoreSource
from lamina.analyses.tuning.contrasts import category, token_length
from lamina.analyses.tuning.run import tune
from lamina.cli import app
from lamina.data.corpus import Document, load_corpus
from lamina.errors import InputError, SiteError
from lamina.extract import extract

runner = CliRunner()
STATS = ["p", "t", "q", "p_bonferroni"]


def _store(lm, samples, folder, sites, context=128, **kw):
    texts = [Document(f"t{i}", t) for i, t in enumerate(samples.texts)]
    return extract(lm, texts, sites, folder, context=context, dtype="float32", progress=False, **kw)


def _same_tuning(a: pd.DataFrame, b: pd.DataFrame):
    """Per-neuron statistics within float tolerance, and the same significant sets."""
    assert len(a) == len(b) and a["name"].tolist() == b["name"].tolist()
    for col in STATS + [c for c in ("r", "slope", "d", "logit_p") if c in a]:
        np.testing.assert_allclose(b[col], a[col], rtol=1e-4, atol=1e-6, err_msg=col)
    assert a["significant"].tolist() == b["significant"].tolist()
    assert a["significant_bonferroni"].tolist() == b["significant_bonferroni"].tolist()


@pytest.fixture(scope="module")
def words(llama):
    return category(llama.tokenizer)


@pytest.fixture(scope="module")
def word_store(llama, words, tmp_path_factory):
    return _store(llama, words, tmp_path_factory.mktemp("w") / "store", ["mlp_post.1", "mlp_post.2", "resid_post.0"])


def test_category_from_store_equals_the_model(llama, words, word_store):
    options = dict(site="mlp_post", layers="1-2", permutations=0, reference_permutations=0, probes=False,
                   n_examples=2, progress=False)
    live = tune(llama, words, **options)
    stored = tune(StoreSource(word_store, llama.tokenizer), words, **options)
    _same_tuning(live.neurons, stored.neurons)
    assert stored.neurons["significant"].any()  # the comparison covers a non-empty significant set
    assert stored.settings["store"] == str(word_store.folder) and "store" not in live.settings
    # the heatmaps read the same values, token by token
    for e_live, e_stored in zip(live.examples, stored.examples):
        assert e_live["neuron"] == e_stored["neuron"]
        for t_live, t_stored in zip(e_live["texts"], e_stored["texts"]):
            assert t_live["tokens"] == t_stored["tokens"]
            np.testing.assert_allclose(t_stored["values"], t_live["values"], rtol=1e-5, atol=1e-5)
    # every stored layer of the kind when no --layers is given
    assert StoreSource(word_store, llama.tokenizer).site_names("mlp_post", None) == ([1, 2], ["mlp_post.1",
                                                                                              "mlp_post.2"])


def test_store_refuses_what_it_cannot_answer(llama, words, word_store, tmp_path):
    source = StoreSource(word_store, llama.tokenizer)
    with pytest.raises(SiteError, match="does not hold mlp_post.3; it holds mlp_post.1, mlp_post.2, resid_post.0"):
        tune(source, words, layers="3", permutations=0, progress=False)
    with pytest.raises(SiteError, match="holds no attn_out site; it holds mlp_post.1"):
        tune(source, words, site="attn_out", permutations=0, progress=False)
    # windows shorter than the texts: a read token's stored value comes from a later window
    short = _store(llama, words, tmp_path / "short", ["mlp_post.1"], context=4)
    with pytest.raises(InputError, match="beyond the first window of their text.*--context at least"):
        StoreSource(short, llama.tokenizer).activations(words, ["mlp_post.1"])
    # texts the store does not hold (another contrast's)
    other = token_length(llama.tokenizer, docs=load_corpus(max_docs=1), max_tokens=100)
    with pytest.raises(InputError, match="not documents of"):
        source.activations(other, ["mlp_post.1"])
    packed = _store(llama, words, tmp_path / "packed", ["mlp_post.1"], pack=True)
    with pytest.raises(InputError, match="--pack"):
        StoreSource(packed, llama.tokenizer).activations(words, ["mlp_post.1"])


def test_cli_tune_store_equals_tune(tmp_path):
    common = ["tune", "--contrast", "token-length", "--max-tokens", "300", "--layers", "1-2", "--permutations", "3",
              "--reference-permutations", "0"]
    texts = tmp_path / "texts.jsonl"
    wrote = runner.invoke(app, common + ["-m", "random:llama", "--texts-out", str(texts)])
    assert wrote.exit_code == 0, wrote.output
    assert "lamina extract --corpus" in wrote.output
    lines = [json.loads(x) for x in texts.read_text().splitlines()]
    assert lines[0]["id"] == "token-length-0" and len(lines) >= 2
    made = runner.invoke(app, ["extract", "--corpus", str(texts), "-m", "random:llama", "--sites",
                               "mlp_post.1,mlp_post.2", "--context", "128", "--max-tokens", "0", "--store-dtype", "float32",
                               "--out", str(tmp_path / "store")])
    assert made.exit_code == 0, made.output
    live = runner.invoke(app, common + ["-m", "random:llama", "--json", "--out", str(tmp_path / "live")])
    stored = runner.invoke(app, common + ["--store", str(tmp_path / "store"), "--json", "--out", str(tmp_path / "st")])
    assert live.exit_code == 0 and stored.exit_code == 0, stored.output
    a, b = (pd.read_csv(tmp_path / d / "neurons.csv") for d in ("live", "st"))
    _same_tuning(a, b)
    ja, jb = json.loads(live.output), json.loads(stored.output)
    assert jb["settings"]["model"] == ja["settings"]["model"] == "random:llama"
    for la, lb in zip(ja["layers"], jb["layers"]):  # the same null draws and replication halves (same seed)
        assert lb["n_significant"] == la["n_significant"] and lb["null_mean"] == pytest.approx(la["null_mean"])
        assert lb["replication_r"] == pytest.approx(la["replication_r"], abs=1e-4)
    assert jb["settings"]["seed"] == ja["settings"]["seed"] == 0


@pytest.mark.parametrize("args, message", [
    (["--contrast", "negation"], "--store does not apply to negation"),
    (["--contrast", "token-length", "-m", "random:gpt2"], "holds activations of random:llama, not of --model random:gpt2"),
    (["--contrast", "token-length", "--seed", "3"], "with seed 0, not --seed 3"),
    (["--contrast", "token-length", "--controls"], "--controls runs a random-weights model"),
])
def test_cli_tune_store_bad_inputs(word_store, args, message):
    result = runner.invoke(app, ["tune", *args, "--store", str(word_store.folder)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
