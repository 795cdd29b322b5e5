"""The laminar profile: layer statistics against numpy, and a planted huge dimension found where it is."""
import numpy as np
import pytest
import scipy.stats
import torch

import lamina
from lamina.analyses.profile.laminar import profile
from lamina.analyses.profile.layer_stats import LayerStats
from lamina.data.corpus import Document
from lamina.errors import InputError

TEXTS = [
    "The river bent slowly around the old mill, and nobody in the village remembered when it had last flooded.",
    "Margaret did not open the letter until the evening, when the house was finally quiet.",
    "Stars are born in clouds of gas and dust that collapse under their own weight.",
]


def test_layer_stats_against_numpy():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 24, generator=gen) * 3 + 1 for n in (1, 17, 64, 5)]
    batches[2][10, 7] = -900.0  # heavy tail
    stats = LayerStats(sample_cap=10_000)
    offset = 0
    for x in batches:
        stats.update(x, torch.arange(offset, offset + len(x)))
        offset += len(x)
    data = torch.cat(batches).double().numpy()
    r = stats.result()
    flat = data.ravel()
    assert r["n_tokens"] == len(data)
    assert r["mean"] == pytest.approx(flat.mean(), rel=1e-5)
    assert r["std"] == pytest.approx(flat.std(), rel=1e-5)
    assert r["skew"] == pytest.approx(scipy.stats.skew(flat), rel=1e-4)
    assert r["kurtosis"] == pytest.approx(scipy.stats.kurtosis(flat), rel=1e-4)
    assert r["frac_positive"] == pytest.approx((flat > 0).mean())
    assert r["mean_token_norm"] == pytest.approx(np.linalg.norm(data, axis=1).mean(), rel=1e-5)
    top = np.sort(np.abs(flat))[::-1]
    assert [r["top1_abs"], r["top2_abs"], r["top3_abs"]] == pytest.approx(top[:3], rel=1e-6)
    assert r["top"][0] == {"value": -900.0, "row": 1 + 17 + 10, "dim": 7}
    assert r["median_abs"] == pytest.approx(np.median(np.abs(flat)))  # sample holds every value here
    assert np.allclose(stats.dim_max_abs.numpy(), np.abs(data).max(0))


def test_median_sample_is_uniform_when_decimated():
    stats = LayerStats(sample_cap=2_000)
    x = torch.rand(1000, 50)  # |x| uniform on (0, 1): median 0.5
    for _i in range(20):
        stats.update(x[torch.randperm(1000)], torch.arange(1000))
    r = stats.result()
    assert 2000 <= len(torch.cat(stats.sample)) <= 4000
    assert r["median_abs"] == pytest.approx(0.5, abs=0.04)


def test_layer_stats_merge_equals_one_pass():
    """Three parts reduced apart and merged (through state_dict, as from Ray actors) equal one pass over all
    the rows: moments to float64 rounding, top-k, maxima and the exact median (under the sample cap)."""
    gen = torch.Generator().manual_seed(1)
    parts = [torch.randn(n, 16, generator=gen).exponential_() * torch.sign(torch.randn(n, 16, generator=gen))
             for n in (40, 3, 71)]
    parts[1][2, 5] = 700.0
    ids = torch.arange(114).split([40, 3, 71])
    whole = LayerStats(sample_cap=10_000)
    pieces = []
    for i, (x, rows) in enumerate(zip(parts, ids)):
        whole.update(x, rows)
        piece = LayerStats(sample_cap=10_000, seed=i)
        piece.update(x, rows)
        pieces.append(LayerStats.from_state_dict(piece.state_dict()))
    merged = pieces[0].merge(pieces[1]).merge(pieces[2])
    want, got = whole.result(), merged.result()
    assert got.pop("top") == want.pop("top")
    assert got == pytest.approx(want, rel=1e-12)
    assert got["median_abs"] == np.median(torch.cat(parts).abs().numpy())  # every value: exact
    assert torch.equal(merged.dim_max_abs, whole.dim_max_abs)


def test_layer_stats_merge_of_thinned_samples_stays_uniform():
    """Parts that each thinned their median sample (to different rates) merge into a uniform sample of rows."""
    x = torch.rand(6000, 40)  # |x| uniform on (0, 1): median 0.5
    big, small = LayerStats(sample_cap=2_000, seed=1), LayerStats(sample_cap=2_000, seed=2)
    big.update(x[:5000], torch.arange(5000))
    small.update(x[5000:], torch.arange(5000, 6000))
    rates = (big.rate, small.rate)
    assert rates[0] < rates[1]
    merged = big.merge(small)
    assert merged.rate == min(rates)
    assert 2_000 <= merged.sample_size <= 4_000 and merged.sample_size % 40 == 0  # whole rows
    assert merged.result()["median_abs"] == pytest.approx(0.5, abs=0.04)
    assert merged.n_rows == 6000


@pytest.fixture(scope="module")
def planted():
    """random:gpt_neox with a huge constant on dimension 17 written by block 2's MLP (its output bias)."""
    lm = lamina.load("random:gpt_neox")
    with torch.no_grad():
        lm.model.get_submodule("gpt_neox.layers.2.mlp.dense_4h_to_h").bias[17] = 5000.0
    return lm


def test_profile_finds_planted_dimension(planted):
    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    result = profile(planted, docs, context=16, batch_size=4, progress=False)
    table = result.table.set_index("layer")
    assert table.loc[0, "massive_dims"] == [] and table.loc[1, "massive_dims"] == []
    assert table.loc[2, "massive_dims"] == [17] and table.loc[3, "massive_dims"] == [17]
    assert table.loc[2, "top1_abs"] == pytest.approx(5000, rel=0.01)
    assert set(result.massive["layer"]) == {2, 3} and set(result.massive["dim"]) == {17}
    assert result.dim_max_abs[2].argmax() == 17 and result.dim_max_abs[1].max() < 100
    # The value at a located (doc, position) is the one a direct capture sees there.
    hit = result.massive.iloc[0]
    ids = planted.tokenizer(TEXTS[int(hit["doc"])])["input_ids"]
    assert planted.tokenizer.decode([ids[hit["position"]]]) == hit["token"]


def test_hidden_states_method_shows_both_readings(planted):
    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    hooks = profile(planted, docs, context=16, progress=False).table
    hidden = profile(planted, docs, context=16, method="hidden-states", progress=False).table
    N = planted.n_layers
    assert list(hidden["reading"])[-2:] == [f"hidden.{N} (after final norm)", f"resid_post.{N - 1} (raw, by hook)"]
    assert hidden["normalized"].tolist() == [False] * (N - 1) + [True, False]
    # below the last layer the two methods read the same tensors
    for L in range(N - 1):
        assert hidden.loc[L, "top1_abs"] == hooks.loc[L, "top1_abs"]
    assert hidden.iloc[-1]["top1_abs"] == hooks.iloc[-1]["top1_abs"]  # raw last block, by hook
    assert hidden.iloc[-2]["top1_abs"] < 100 < hooks.iloc[-1]["top1_abs"]  # the final norm hides the dimension


def test_profile_bad_input(planted):
    docs = [Document("0", TEXTS[0])]
    with pytest.raises(InputError, match="cannot profile"):
        profile(planted, docs, kind="logits", progress=False)
    with pytest.raises(InputError, match="residual stream only"):
        profile(planted, docs, kind="mlp_post", method="hidden-states", progress=False)
