"""Analyses over an activation store equal the same analyses running the model (float32 store)."""
import json

import numpy as np
import pytest

from lamina.analyses.neurons.top_examples import top_examples, top_examples_from
from lamina.analyses.profile.laminar import profile, profile_store
from lamina.analyses.sources.model import ModelSource
from lamina.analyses.sources.store import StoreSource
from lamina.analyses.tuning.contrasts import token_length
from lamina.data.corpus import Document, load_corpus
from lamina.errors import InputError, SiteError
from lamina.extract import extract
from lamina.store import ActivationStore

NEURONS = ["mlp_post.1:5", "resid_post.2:7", "mlp_post.1:200"]


@pytest.fixture(scope="module")
def docs():
    return load_corpus(max_docs=4)


@pytest.fixture(scope="module")
def store(llama, docs, tmp_path_factory):
    sites = ["mlp_post.1"] + [f"resid_post.{L}" for L in range(llama.n_layers)]
    return extract(llama, docs, sites, tmp_path_factory.mktemp("s") / "store", context=32, batch_size=4,
                   dtype="float32", max_tokens=700, windows_per_shard=3, progress=False)


def test_top_examples_from_store_equal_the_model(llama, docs, store):
    live = top_examples(llama, NEURONS, docs, k=3, context=32, batch_size=4, max_tokens=700, progress=False)
    stored = top_examples_from(StoreSource(store, llama.tokenizer), NEURONS, k=3, batch_size=4, progress=False)
    assert len(store.shards) > 3  # batches cross shard boundaries (3 windows a shard, 4 a batch)
    assert json.dumps(stored.neurons) == json.dumps(live.neurons)  # every value, example and token equal
    best = stored.neurons["mlp_post.1:5"]["top"][0]
    values = store.numpy("mlp_post.1", [5])[:, 0]
    assert best["value"] == pytest.approx(float(values.max()), abs=0) and stored.neurons["mlp_post.1:5"]["n_tokens"] == len(values)


def test_profile_from_store_equals_the_model(llama, docs, store):
    live = profile(llama, docs, context=32, batch_size=4, max_tokens=700, progress=False)
    stored = profile_store(store, batch_size=4, tokenizer=llama.tokenizer, progress=False)
    cols = [c for c in live.table.columns if c not in ("reading", "site")]
    assert live.table[cols].equals(stored.table[cols])
    np.testing.assert_array_equal(live.dim_max_abs, stored.dim_max_abs)
    # the first layer's std against numpy on the stored values
    assert stored.table["std"][0] == pytest.approx(float(store.numpy("resid_post.0").astype(np.float64).std()), rel=1e-6)


def test_missing_site_names_the_stored_ones(llama, store):
    with pytest.raises(SiteError, match=r"does not hold mlp_post.3; it holds mlp_post.1, resid_post.0"):
        top_examples_from(StoreSource(store, llama.tokenizer), ["mlp_post.3:1"], progress=False)
    with pytest.raises(SiteError, match="holds no attn_out site; it holds mlp_post.1"):
        profile_store(store, kind="attn_out", progress=False)
    with pytest.raises(SiteError, match="out of range; mlp_post.1 has neurons 0-"):
        top_examples_from(StoreSource(store, llama.tokenizer), ["mlp_post.1:100000"], progress=False)


def test_tuning_samples_from_store_equal_the_model(llama, tmp_path):
    samples = token_length(llama.tokenizer, docs=load_corpus(max_docs=1), max_tokens=400, max_length=64)
    texts = [Document(f"t{i}", t) for i, t in enumerate(samples.texts)]
    store = extract(llama, texts, ["mlp_post.2", "resid_post.1"], tmp_path / "s", context=64, dtype="float32",
                    progress=False)
    live = ModelSource(llama).activations(samples, ["mlp_post.2", "resid_post.1"])
    stored = StoreSource(store, llama.tokenizer).activations(samples, ["mlp_post.2", "resid_post.1"])
    for site in live:
        assert stored[site].shape == live[site].shape == (len(samples.rows), live[site].shape[1])
        np.testing.assert_allclose(stored[site], live[site], rtol=1e-5, atol=1e-5)
    other = extract(llama, texts[1:], ["mlp_post.2"], tmp_path / "other", context=64, dtype="float32", progress=False)
    with pytest.raises(InputError, match="not documents of"):
        StoreSource(other, llama.tokenizer).activations(samples, ["mlp_post.2"])


def test_incomplete_store_is_refused(llama, docs, tmp_path):
    part = extract(llama, docs, ["mlp_post.1"], tmp_path / "p", context=32, max_tokens=300, windows_per_shard=2,
                   worker=0, workers=2, progress=False)
    with pytest.raises(InputError, match="finish it with"):
        StoreSource(ActivationStore(part.folder))
