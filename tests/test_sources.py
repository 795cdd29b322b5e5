"""The one activation source: the model and the store give the same pooled samples, and the interface refuses
what it cannot serve (a wrong source type, names a store cannot bound, windows a samples-only source lacks)."""
import numpy as np
import pandas as pd
import pytest
import torch
from test_device import ReportsMeta

from lamina.analyses.sources import ActivationSource, as_source
from lamina.analyses.sources.model import ModelSource
from lamina.analyses.sources.store import StoreSource
from lamina.analyses.tuning.contrasts import SampleSet
from lamina.analyses.tuning.run import tune
from lamina.data.corpus import Document
from lamina.errors import InputError, SiteError
from lamina.extract import extract
from lamina.sites import parse_layers

TEXTS = ["The cat sat on the mat because it was tired.", "She did not go to Paris last summer.",
         "Numbers like 42 and 1999 appear in text.", "A short one."]
SITES = ["mlp_post.1", "resid_post.2", "q.0"]


@pytest.fixture(scope="module")
def samples():
    """Samples read at one token or averaged over several (word_pooling="mean"), two of them in one text."""
    rows = pd.DataFrame({"text": [0, 0, 1, 2, 3, 1], "positions": [(1, 2, 3), (5,), (0,), (2, 3), (1,), (4, 5, 6, 7)],
                         "label": [True, False, True, False, True, False]})
    return SampleSet("test", TEXTS, rows, "binary", ("a", "b"), "x", "test reads", word_pooling="mean", max_length=32)


@pytest.fixture(scope="module")
def store(llama, tmp_path_factory):
    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    return extract(llama, docs, SITES, tmp_path_factory.mktemp("src") / "store", context=32, dtype="float32",
                   progress=False)


def test_model_and_store_pool_the_same_samples(llama, samples, store):
    live = ModelSource(llama).activations(samples, SITES)
    stored = StoreSource(store, llama.tokenizer).activations(samples, SITES)
    for site in SITES:
        # the known answer: each text alone through the model, the mean of the rows at the sample's positions
        want = np.stack([llama.capture([TEXTS[t]], [site])[site][0].flatten(1)[list(p)].double().mean(0).numpy()
                         for t, p in zip(samples.rows["text"], samples.rows["positions"])])
        assert live[site].shape == stored[site].shape == want.shape and live[site].dtype == np.float32
        np.testing.assert_allclose(live[site], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stored[site], live[site], rtol=1e-5, atol=1e-5)
    assert not np.allclose(live["mlp_post.1"][0], live["mlp_post.1"][1])  # distinct samples, distinct values
    # the heatmaps' token values, text by text
    for (ids_m, v_m), (ids_s, v_s) in zip(ModelSource(llama).token_values(samples, [0, 3], "q.0", 7),
                                          StoreSource(store, llama.tokenizer).token_values(samples, [0, 3], "q.0", 7)):
        assert ids_m == ids_s and len(v_m) == len(ids_m)
        np.testing.assert_allclose(v_s, v_m, rtol=1e-5, atol=1e-5)


def test_store_provenance_and_names(llama, store):
    source = StoreSource(store, llama.tokenizer)
    assert source.store is store and ModelSource(llama).store is None
    assert source.provenance() == {"store": str(store.folder), "store_dtype": "float32"}
    assert ModelSource(llama).provenance() == {}
    assert source.site_names("mlp_post", None) == ([1], ["mlp_post.1"])
    assert source.neuron("blocks.2.hook_resid_post:5") == ("resid_post.2", 5)   # aliases, no layer count needed
    with pytest.raises(SiteError, match="count layers from 0"):
        source.neuron("mlp_post.-1:3")
    with pytest.raises(SiteError, match="give a layer, e.g. mlp_post.0"):
        source.neuron("mlp_post:3")
    with pytest.raises(SiteError, match="does not hold mlp_post.7"):
        source.neuron("mlp_post.7:3")                                          # unbounded parse, then the store


def test_a_wrong_source_is_refused(llama, samples):
    with pytest.raises(InputError, match="tune reads activations from a model .* not from str"):
        tune("random:llama", samples, permutations=0, progress=False)
    with pytest.raises(InputError, match="not from dict"):
        as_source({"input_ids": [1, 2]})
    assert isinstance(as_source(llama), ModelSource) and isinstance(as_source(llama), ActivationSource)
    with pytest.raises(TypeError, match="abstract"):
        ActivationSource([])                                                   # the interface is not a source
    with pytest.raises(InputError, match="holds no windows"):
        next(ModelSource(llama).stream(["mlp_post.1"], 4))


def test_parse_layers_without_a_layer_count():
    assert parse_layers("3,1-2", None) == [1, 2, 3] and parse_layers([5, 4], None) == [4, 5]
    with pytest.raises(InputError, match="count layers from 0"):
        parse_layers("-1", None)
    with pytest.raises(InputError, match="needs the model's number of layers"):
        parse_layers("all", None)


def test_tune_sampling_moves_its_inputs(llama, samples):
    """tune's forward passes (the samples, the heatmap texts) get their inputs from `lm.inputs`."""
    meta = ReportsMeta(llama.model, llama.tokenizer, llama.anatomy, llama.spec)
    want = ModelSource(llama).activations(samples, SITES)
    with meta.checking():
        got = ModelSource(meta).activations(samples, SITES)
        values = ModelSource(meta).token_values(samples, [1, 2], "mlp_post.1", 3)
    assert meta.checked == 2  # one batch of sample texts, one of heatmap texts
    for site in SITES:
        np.testing.assert_array_equal(got[site], want[site])
    torch.testing.assert_close(torch.as_tensor(values[0][1]),
                               torch.as_tensor(ModelSource(llama).token_values(samples, [1, 2], "mlp_post.1", 3)[0][1]))
