import math

import numpy as np
import pytest
import torch
from layer_summary import LayerSummary
from scipy import stats

from lamina.runningstats import RunningHistogram, RunningMoments, RunningTopK

SIZES = [1, 37, 200, 1, 5, 400, 2, 123]  # uneven batches, including single rows


def heavy_data(n=sum(SIZES), d=6, seed=0):
    """Heavy-tailed float64 data with per-dim offsets/scales and a few zero/negative dims."""
    g = np.random.default_rng(seed)
    x = g.standard_t(3, size=(n, d)) * g.uniform(0.1, 5, d) + g.normal(0, 3, d)
    x[:, 0] = g.lognormal(0, 2, n)  # strongly skewed, all positive
    x[::3, 1] = 0.0  # exact zeros (not positive)
    return torch.from_numpy(x)


def batches(x, sizes=SIZES):
    return list(torch.split(x, sizes))


def row_ids_for(x, start=0):
    return torch.arange(start, start + x.shape[0])


def check_moments(m, xn):
    rt = dict(rtol=1e-9, atol=1e-12)
    assert m.n == xn.shape[0]
    np.testing.assert_allclose(m.mean.numpy(), xn.mean(0), **rt)
    np.testing.assert_allclose(m.var().numpy(), xn.var(0), **rt)
    np.testing.assert_allclose(m.var(ddof=1).numpy(), xn.var(0, ddof=1), **rt)
    np.testing.assert_allclose(m.std().numpy(), xn.std(0), **rt)
    np.testing.assert_allclose(m.skew().numpy(), stats.skew(xn, axis=0), **rt)
    np.testing.assert_allclose(m.kurtosis().numpy(), stats.kurtosis(xn, axis=0), **rt)
    np.testing.assert_array_equal(m.min.numpy(), xn.min(0))
    np.testing.assert_array_equal(m.max.numpy(), xn.max(0))
    np.testing.assert_allclose(m.frac_pos().numpy(), (xn > 0).mean(0), **rt)
    np.testing.assert_allclose(m.mean_abs().numpy(), np.abs(xn).mean(0), **rt)
    np.testing.assert_allclose(m.mean_sq().numpy(), (xn**2).mean(0), **rt)


# ---------------------------------------------------------------- RunningMoments

def test_moments_streaming_matches_numpy():
    x = heavy_data()
    m = RunningMoments()
    for b in batches(x):
        m.update(b)
    check_moments(m, x.numpy())


def test_moments_low_precision_input_accumulates_in_float64():
    x = heavy_data().to(torch.bfloat16)
    m = RunningMoments()
    for b in batches(x):
        m.update(b)
    assert m.mean.dtype == torch.float64
    check_moments(m, x.to(torch.float64).numpy())


def test_moments_merge_equals_single_pass():
    x = heavy_data(seed=1)
    a, b, full = RunningMoments(), RunningMoments(), RunningMoments()
    for i, chunk in enumerate(batches(x)):
        (a if i % 2 else b).update(chunk)
        full.update(chunk)
    a.merge(b)
    for k in RunningMoments.KEYS:
        torch.testing.assert_close(getattr(a, k), getattr(full, k), rtol=1e-9, atol=1e-9)
    check_moments(a, x.numpy())
    # merging with / into an empty object is a no-op / copy
    e = RunningMoments().merge(a).merge(RunningMoments())
    check_moments(e, x.numpy())


def test_moments_state_dict_roundtrip(tmp_path):
    x = heavy_data(seed=2)
    parts = batches(x)
    m = RunningMoments()
    for b in parts[:4]:
        m.update(b)
    torch.save(m.state_dict(), tmp_path / "m.pt")
    r = RunningMoments.from_state_dict(torch.load(tmp_path / "m.pt"))
    for k in RunningMoments.KEYS:
        assert torch.equal(getattr(r, k), getattr(m, k))
    for b in parts[4:]:
        r.update(b)
    check_moments(r, x.numpy())
    empty = RunningMoments.from_state_dict(RunningMoments().state_dict())
    assert empty.n == 0


def test_moments_pooled_matches_flattened_numpy():
    x = heavy_data(seed=3)
    m = RunningMoments()
    for b in batches(x):
        m.update(b)
    check_moments(m.pooled(), x.numpy().reshape(-1, 1))


def test_moments_constant_column_gives_nan_shape_stats():
    x = torch.ones(10, 2, dtype=torch.float64)
    m = RunningMoments().update(x[:3]).update(x[3:])
    assert torch.all(m.var() == 0)
    assert torch.isnan(m.skew()).all() and torch.isnan(m.kurtosis()).all()
    assert torch.isnan(RunningMoments().update(x[:1]).var(ddof=1)).all()


# ---------------------------------------------------------------- RunningHistogram

@pytest.mark.parametrize("per_dim", [False, True])
def test_histogram_matches_numpy(per_dim):
    x = heavy_data(seed=4)
    x[5, 2] = 4.0  # exactly on the last edge: goes into the last bin, like numpy
    x[6, 2] = -4.0  # exactly on the first edge
    edges = torch.linspace(-4, 4, 33, dtype=torch.float64)
    h = RunningHistogram(edges, per_dim=per_dim)
    for b in batches(x):
        h.update(b.to(torch.float32) if b.shape[0] == 1 else b)  # dtype mix is fine
    xn, en = x.numpy(), edges.numpy()
    if per_dim:
        for j in range(x.shape[1]):
            np.testing.assert_array_equal(h.counts[j].numpy(), np.histogram(xn[:, j], en)[0])
            assert int(h.underflow[j]) == (xn[:, j] < -4).sum()
            assert int(h.overflow[j]) == (xn[:, j] > 4).sum()
    else:
        np.testing.assert_array_equal(h.counts.numpy(), np.histogram(xn, en)[0])
        assert int(h.underflow) == (xn < -4).sum() and int(h.overflow) == (xn > 4).sum()
        assert int(h.underflow) > 0 and int(h.overflow) > 0
        assert int(h.counts.sum() + h.underflow + h.overflow) == xn.size


def test_histogram_nan_merge_and_state_dict(tmp_path):
    x = heavy_data(seed=5)
    x[3, 1] = math.nan
    edges = torch.logspace(-3, 2, 26, dtype=torch.float64)  # log-spaced edges over |x|
    a, b, full = (RunningHistogram(edges, per_dim=True) for _ in range(3))
    for i, chunk in enumerate(batches(x.abs())):
        (a if i % 2 else b).update(chunk)
        full.update(chunk)
    assert int(full.nan[1]) == 1 and int(full.nan.sum()) == 1
    torch.save(a.state_dict(), tmp_path / "h.pt")
    r = RunningHistogram.from_state_dict(torch.load(tmp_path / "h.pt"))
    assert r.per_dim and torch.equal(r.slots, a.slots)
    assert torch.equal(r.merge(b).slots, full.slots)


def test_histogram_quantile_within_one_bin():
    x = heavy_data(n=2001, seed=6)
    edges = torch.linspace(-20, 20, 401, dtype=torch.float64)
    h = RunningHistogram(edges, per_dim=True).update(x)
    w = 0.1
    med = np.median(x.numpy(), axis=0)
    assert np.all(np.abs(h.quantile(0.5).numpy() - med) <= w)
    q = RunningHistogram(edges).update(torch.tensor([[50.0], [60.0], [-30.0]])).quantile(0.5)
    assert q == math.inf  # median beyond the last edge


# ---------------------------------------------------------------- RunningTopK

@pytest.mark.parametrize("largest,by_abs", [(True, False), (False, False), (True, True)])
def test_topk_matches_torch_topk(largest, by_abs):
    x = heavy_data(seed=7)
    ids = torch.arange(x.shape[0]) * 10 + 7  # arbitrary global ids
    k = 5
    t = RunningTopK(k, largest=largest, by_abs=by_abs)
    for b, i in zip(batches(x), batches(ids)):
        t.update(b, i)
    key = x.abs() if by_abs else x
    ref = key.topk(k, dim=0, largest=largest)
    vals, rids = t.result()
    assert torch.equal(rids, ids[ref.indices])
    assert torch.equal(vals, x.gather(0, ref.indices))


def test_topk_merge_state_dict_and_fewer_than_k(tmp_path):
    x = heavy_data(seed=8)
    ids = torch.arange(x.shape[0])
    a, b, full = (RunningTopK(4) for _ in range(3))
    for i, (chunk, ci) in enumerate(zip(batches(x), batches(ids))):
        (a if i % 2 else b).update(chunk, ci)
        full.update(chunk, ci)
    torch.save(a.state_dict(), tmp_path / "t.pt")
    r = RunningTopK.from_state_dict(torch.load(tmp_path / "t.pt"))
    assert torch.equal(r.values, a.values) and torch.equal(r.row_ids, a.row_ids)
    r.merge(b)
    assert torch.equal(r.values, full.values) and torch.equal(r.row_ids, full.row_ids)
    # fewer rows than k: filled with -inf / -1 (+inf for smallest)
    s = RunningTopK(4).update(x[:2], ids[:2])
    assert torch.all(s.values[2:] == -math.inf) and torch.all(s.row_ids[2:] == -1)
    assert torch.equal(s.values[:2], x[:2].sort(0, descending=True).values)
    s = RunningTopK(4, largest=False).update(x[:1], ids[:1])
    assert torch.all(s.values[1:] == math.inf) and torch.all(s.row_ids[0] == 0)


def test_topk_ties_and_nans():
    x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [3.0, math.nan], [0.5, 2.0]])
    ids = torch.tensor([10, 11, 12, 13])
    t = RunningTopK(2).update(x[:2], ids[:2]).update(x[2:], ids[2:])
    vals, rids = t.result()
    assert vals[:, 0].tolist() == [3.0, 3.0] and sorted(rids[:, 0].tolist()) == [11, 12]
    assert vals[:, 1].tolist() == [2.0, 2.0]
    # every kept (value, row id) pair is consistent with the data; NaN row never kept
    for j in range(2):
        for v, r in zip(vals[:, j].tolist(), rids[:, j].tolist()):
            assert x[r - 10, j].item() == v
    assert 12 not in rids[:, 1].tolist()


# ---------------------------------------------------------------- LayerSummary

def test_layer_summary_end_to_end(tmp_path):
    g = torch.Generator().manual_seed(9)
    n, d = 3001, 64  # odd n*d so the median is a single order statistic
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.exp(torch.randn(d, generator=g, dtype=torch.float64))
    x[100:105, 3] = 0.0
    x[1234, 17] = -5e4  # planted massive activation
    x[2000, 40] = 3e3  # runner-up
    x = x.to(torch.float32)
    ids = torch.arange(n) + 1_000_000  # global token index
    sizes = [1, 999, 1, 1000, 1000]
    a, b = LayerSummary(), LayerSummary()
    for i, (chunk, ci) in enumerate(zip(torch.split(x, sizes), torch.split(ids, sizes))):
        (a if i < 3 else b).update(chunk, ci)
    torch.save(a.state_dict(), tmp_path / "s.pt")
    s = LayerSummary.from_state_dict(torch.load(tmp_path / "s.pt")).merge(b)
    res = s.result()

    xn = x.to(torch.float64).numpy()
    assert res["n_rows"] == n and res["d"] == d
    top = res["top_abs"]
    assert (top[0]["row"], top[0]["dim"], top[0]["value"]) == (1234 + 1_000_000, 17, -5e4)
    assert (top[1]["row"], top[1]["dim"]) == (2000 + 1_000_000, 40)
    flat = np.abs(xn).ravel()
    third = np.argsort(-flat, kind="stable")[2]
    assert (top[2]["row"] - 1_000_000, top[2]["dim"]) == divmod(third, d)

    med = np.median(np.abs(xn))
    err = abs(math.log10(res["median_abs"]) - math.log10(med))
    assert err <= res["median_abs_log10_err"] + 1e-12
    assert res["median_abs_log10_err"] == pytest.approx(0.01)

    rt = 1e-9
    flatv = xn.ravel()
    assert res["mean"] == pytest.approx(flatv.mean(), rel=rt)
    assert res["std"] == pytest.approx(flatv.std(), rel=rt)
    assert res["skew"] == pytest.approx(stats.skew(flatv), rel=1e-8)
    assert res["kurtosis"] == pytest.approx(stats.kurtosis(flatv), rel=1e-8)
    assert res["min"] == flatv.min() and res["max"] == flatv.max()
    assert res["frac_pos"] == pytest.approx((flatv > 0).mean(), rel=rt)
    assert res["mean_abs"] == pytest.approx(np.abs(flatv).mean(), rel=rt)
    assert res["rms"] == pytest.approx(np.sqrt((flatv**2).mean()), rel=rt)
    assert res["mean_row_norm"] == pytest.approx(np.linalg.norm(xn, axis=1).mean(), rel=rt)
    assert all(isinstance(v, (int, float, list)) for v in res.values())


def test_layer_summary_median_with_many_zeros():
    x = torch.zeros(11, 3)
    x[:4] = 2.0
    s = LayerSummary().update(x, torch.arange(11))
    assert s.median_abs() == 0.0  # median |x| is 0 -> below the histogram range
    x[:] = 0.25
    s = LayerSummary().update(x, torch.arange(11))
    assert abs(math.log10(s.median_abs()) - math.log10(0.25)) <= s.bin_width


def test_safetensors_roundtrip_and_empty_objects(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    x = heavy_data(seed=10).to(torch.float16)
    ids = torch.arange(x.shape[0])
    objs = [RunningMoments().update(x), RunningHistogram(torch.linspace(-3, 3, 13), per_dim=True).update(x),
            RunningTopK(3, by_abs=True).update(x, ids), LayerSummary(-4, 3, 20).update(x, ids)]
    for o in objs:
        st.save_file(o.state_dict(), tmp_path / "s.safetensors")
        r = type(o).from_state_dict(st.load_file(tmp_path / "s.safetensors"))
        sd, rsd = o.state_dict(), r.state_dict()
        assert sd.keys() == rsd.keys() and all(torch.equal(sd[k], rsd[k]) for k in sd)
    s = LayerSummary.from_state_dict(objs[3].state_dict())
    assert s.bin_width == pytest.approx(0.05) and s.result() == objs[3].result()
    # empty objects round-trip and merge as no-ops
    for o in [RunningMoments(), RunningHistogram([0.0, 1.0]), RunningTopK(2), LayerSummary()]:
        r = type(o).from_state_dict(o.state_dict())
        assert r.state_dict().keys() == o.state_dict().keys()
    e = LayerSummary.from_state_dict(LayerSummary(-4, 3, 20).state_dict()).merge(objs[3])
    assert e.result() == objs[3].result()


def test_topk_one_per_group_equals_a_per_group_max():
    """group_bits: per column, the best row of each group (doc << 24 | pos), top k of those; across batches."""
    from lamina.runningstats import RunningTopK

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 5, generator=g, dtype=torch.float64)
    rows = torch.arange(1000) + ((torch.arange(1000) // 37) << 24)           # groups of 37 rows, across batches
    t = RunningTopK(4, group_bits=24)
    for a in range(0, 1000, 128):
        t.update(x[a:a + 128], rows[a:a + 128])
    values, ids = t.result()
    group = (rows >> 24).numpy()
    for c in range(5):
        best = {}
        for r in range(1000):
            if group[r] not in best or x[r, c] > best[group[r]][0]:
                best[group[r]] = (float(x[r, c]), int(rows[r]))
        ref = sorted(best.values(), reverse=True)[:4]
        assert values[:, c].tolist() == [v for v, _ in ref] and ids[:, c].tolist() == [r for _, r in ref]
    a, b = RunningTopK(4, group_bits=24), RunningTopK(4, group_bits=24)
    a.update(x[:500], rows[:500]).merge(b.update(x[500:], rows[500:]))
    assert torch.equal(a.values, t.values) and torch.equal(a.row_ids, t.row_ids)
    c = RunningTopK.from_state_dict(t.state_dict())
    assert c.group_bits == 24 and torch.equal(c.values, t.values)


def test_row_reservoir_is_the_same_sample_for_any_split():
    from lamina.reservoir import RowReservoir, row_hash

    x = torch.randn(1000, 3, dtype=torch.float64)
    rows = torch.arange(1000) * 7
    one = RowReservoir(50)
    for a in range(0, 1000, 100):
        one.update(x[a:a + 100], rows[a:a + 100])
    even, odd = RowReservoir(50).update(x[::2], rows[::2]), RowReservoir(50).update(x[1::2], rows[1::2])
    even.merge(odd)
    assert torch.equal(one.row_ids, even.row_ids) and torch.equal(one.values, even.values)
    keys = row_hash(rows.numpy())
    assert torch.equal(one.row_ids, rows[keys.argsort()[:50]])                # the 50 smallest hashes
    assert torch.equal(one.values, x[keys.argsort()[:50]])
    # the hash is uniform enough for a sample: its mean over 100k ids is 1/2 within 4 standard errors
    assert abs(float(row_hash(np.arange(100_000)).mean()) - 0.5) < 4 * (1 / 12) ** 0.5 / 100_000 ** 0.5
