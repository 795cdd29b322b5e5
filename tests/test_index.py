"""The neuron index against numpy on the stored values; per-document top-k; workers and merges."""
import numpy as np
import pytest
import torch
from safetensors import safe_open

from lamina.data.corpus import Document, load_corpus
from lamina.errors import SiteError
from lamina.extract import extract
from lamina.index import IndexSettings, NeuronIndex, write_index
from lamina.index.build import index_states, signed_log_edges
from lamina.store import ActivationStore

SITES = ["mlp_post.1", "resid_post.2"]


def short_docs():
    """Eight documents of about 150 tokens: several per shard, some across shard boundaries."""
    return [Document(d.id, d.text[:700]) for d in load_corpus(max_docs=8)]


@pytest.fixture(scope="module")
def store(llama, tmp_path_factory):
    return extract(llama, short_docs(), SITES, tmp_path_factory.mktemp("s") / "store", context=32,
                   batch_size=4, dtype="float32", max_tokens=900, windows_per_shard=5, progress=False)


@pytest.fixture(scope="module")
def index(store):
    write_index(store, settings=IndexSettings(k=5, before=4, after=3, reservoir=300), progress=False)
    return NeuronIndex(store.folder)


def arrays(index, site):
    with safe_open(str(index.folder / f"{site}.safetensors"), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


@pytest.mark.parametrize("site", SITES)
def test_statistics_equal_numpy(store, index, site):
    x = store.numpy(site).astype(np.float64)                                       # [rows, d]
    a = arrays(index, site)
    np.testing.assert_allclose(a["max"], x.max(0), rtol=1e-6)
    np.testing.assert_allclose(a["min"], x.min(0), rtol=1e-6)
    np.testing.assert_allclose(a["mean"], x.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a["std"], x.std(0), rtol=1e-5)
    np.testing.assert_allclose(a["frac_pos"], (x > 0).mean(0), rtol=1e-6)
    edges = signed_log_edges().numpy()
    for n in (0, 7, x.shape[1] - 1):
        assert a["hist"][n].tolist() == np.histogram(x[:, n], edges)[0].tolist()
    # top-k: the k largest values of each column, highest first, with the rows that hold them
    top = -np.sort(-x, axis=0)[:5].T
    np.testing.assert_allclose(a["top_value"], top, rtol=1e-6)
    rows = ActivationStore(store.folder).tokens()
    row_ids = (rows["doc"].to_numpy() << 24) | rows["position"].to_numpy()
    where = {r: i for i, r in enumerate(row_ids)}
    for n in (0, 3):
        for j in range(5):
            assert x[where[int(a["top_row_id"][n, j])], n] == pytest.approx(a["top_value"][n, j], rel=1e-6)


def test_examples_carry_their_context(store, index, llama):
    r = index.neuron("mlp_post.1", 3, llama.tokenizer, store.manifest["doc_ids"])
    tokens = store.tokens()
    x = store.numpy("mlp_post.1", [3])[:, 0]
    assert [e["activation"] for e in r["top_examples"]] == sorted((e["activation"] for e in r["top_examples"]), reverse=True)
    for e in r["top_examples"]:
        doc = tokens[tokens["doc"] == e["doc_index"]]
        span = doc[(doc["position"] >= e["position"] - 4) & (doc["position"] <= e["position"] + 3)]
        assert e["token_ids"] == span["token_id"].tolist()
        np.testing.assert_allclose(e["activations"], x[span.index], rtol=1e-6)
        assert e["activations"][e["focus"]] == pytest.approx(e["activation"], rel=1e-6)
        assert e["tokens"] == [llama.tokenizer.decode([t]) for t in e["token_ids"]]
    # quantile samples lie inside their bins of the sample's quantiles
    q = r["quantile_edges"]
    assert len(r["quantile_samples"]) == 20
    for e in r["quantile_samples"]:
        assert q[e["bin"]] - 1e-6 <= e["activation"] <= q[e["bin"] + 1] + 1e-6
    with pytest.raises(SiteError, match="out of range"):
        index.neuron("mlp_post.1", 10**6)


def test_one_example_per_document(store, tmp_path):
    path = write_index(store, tmp_path / "ix", IndexSettings(k=3, per_doc=True), sites=["mlp_post.1"], progress=False)
    a = arrays(NeuronIndex(path), "mlp_post.1")
    tokens = store.tokens()
    x = store.numpy("mlp_post.1")
    for n in (0, 5, 9):
        per_doc = tokens.assign(v=x[:, n]).groupby("doc")["v"].max().sort_values(ascending=False)
        np.testing.assert_allclose(a["top_value"][n], per_doc.to_numpy()[:3], rtol=1e-6)
        assert sorted({int(r) >> 24 for r in a["top_row_id"][n]}) == sorted(per_doc.index[:3].tolist())


def test_workers_and_merges_index_the_same(llama, store, tmp_path):
    docs = short_docs()
    kw = dict(context=32, batch_size=4, dtype="float32", max_tokens=900, windows_per_shard=5, progress=False)
    for worker in (0, 1):
        extract(llama, docs, SITES, tmp_path / "w", worker=worker, workers=2, resume=worker > 0, **kw)
    split = write_index(ActivationStore(tmp_path / "w"), settings=IndexSettings(k=5, before=4, after=3, reservoir=300),
                        progress=False)
    whole = NeuronIndex(store.folder).folder
    for site in SITES:
        a, b = arrays(NeuronIndex(split), site), arrays(NeuronIndex(whole), site)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the states of two disjoint halves of the shards, merged, equal one pass over all of them
    s = IndexSettings(k=5, reservoir=300, per_doc=True)
    shards = sorted(store.shards)
    full = index_states(store, s, ["mlp_post.1"], progress=False)["mlp_post.1"]
    half = index_states(store, s, ["mlp_post.1"], shards=set(shards[::2]), progress=False)["mlp_post.1"]
    half.merge(index_states(store, s, ["mlp_post.1"], shards=set(shards[1::2]), progress=False)["mlp_post.1"])
    assert torch.equal(half.top.values, full.top.values) and torch.equal(half.hist.slots, full.hist.slots)
    assert torch.equal(half.sample.row_ids, full.sample.row_ids)
    torch.testing.assert_close(half.moments.std(), full.moments.std(), rtol=1e-12, atol=0)
