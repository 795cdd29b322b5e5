"""
Streaming, mergeable per-dimension statistics over activations too large for memory.

In the spirit of baukit's runningstats: small objects that eat batches x [n_rows, d]
(rows = tokens, columns = neurons), can be merged across shards/processes (Chan/Pebay
parallel formulas), and round-trip through state_dict() of plain tensors, so they can be
saved with torch.save or safetensors. Inputs may be any float dtype and any leading shape
[..., d] (flattened to rows); everything is accumulated in float64 (counts in int64) on
the device of the first batch. merge() is in place and returns self.
"""
import math

import torch


def _rows(x):
    """Flatten x [..., d] to float64 rows [n, d]."""
    return x.reshape(-1, x.shape[-1]).to(torch.float64)


class _Stat:
    """Base class giving every accumulator from_state_dict()."""

    @classmethod
    def from_state_dict(cls, sd):
        """Construct from state_dict() output."""
        return cls.__new__(cls).load_state_dict(sd)


class RunningMoments(_Stat):
    """Per-dimension count, mean, var, skew, kurtosis, min, max, frac>0, mean|x|, mean x^2."""

    KEYS = ("mean", "m2", "m3", "m4", "min", "max", "npos", "sum_abs")

    def __init__(self):
        """Empty accumulator; the width d is set by the first update."""
        self.n = 0  # rows seen
        for k in self.KEYS:
            setattr(self, k, None)  # each [d]

    def update(self, x, dtype=torch.float64):
        """Add a batch x [..., d]: compute its central moments, then merge them in.

        dtype=torch.float32 computes the batch's moments in float32 (about twice as fast; each column's sums
        over one batch carry float32 rounding) before the float64 merge."""
        x = x.reshape(-1, x.shape[-1]).to(dtype)
        if x.shape[0] == 0:
            return self
        b = RunningMoments()
        b.n, b.mean = x.shape[0], x.mean(0)
        c = x - b.mean
        c2 = c * c
        b.m2, b.m3, b.m4 = c2.sum(0), (c2 * c).sum(0), (c2 * c2).sum(0)
        low, high = torch.aminmax(x, dim=0)
        b.min, b.max = low, high
        b.npos, b.sum_abs = (x > 0).sum(0), x.abs().sum(0)
        if dtype != torch.float64:
            for k in self.KEYS:
                if k != "npos":
                    setattr(b, k, getattr(b, k).double())
        return self.merge(b)

    def merge(self, other):
        """Fold another RunningMoments into this one (Pebay 2008 pairwise formulas)."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n = other.n
            for k in self.KEYS:
                setattr(self, k, getattr(other, k).clone())
            return self
        na, nb = float(self.n), float(other.n)
        n = na + nb
        d = other.mean - self.mean
        d2 = d * d
        m2a, m3a, m2b, m3b = self.m2, self.m3, other.m2, other.m3
        self.m4 = (self.m4 + other.m4 + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / n**3
                   + 6 * d2 * (na * na * m2b + nb * nb * m2a) / n**2 + 4 * d * (na * m3b - nb * m3a) / n)
        self.m3 = m3a + m3b + d2 * d * na * nb * (na - nb) / n**2 + 3 * d * (na * m2b - nb * m2a) / n
        self.m2 = m2a + m2b + d2 * na * nb / n
        self.mean = self.mean + d * (nb / n)
        self.min, self.max = torch.minimum(self.min, other.min), torch.maximum(self.max, other.max)
        self.npos, self.sum_abs = self.npos + other.npos, self.sum_abs + other.sum_abs
        self.n += other.n
        return self

    def var(self, ddof=0):
        """Variance [d]; ddof=0 population (numpy default), ddof=1 sample (nan if n<=ddof)."""
        return self.m2 / (self.n - ddof) if self.n > ddof else torch.full_like(self.m2, math.nan)

    def std(self, ddof=0):
        """Standard deviation [d]."""
        return self.var(ddof).sqrt()

    def skew(self):
        """Biased skewness [d], = scipy.stats.skew(bias=True); nan where variance is 0."""
        return math.sqrt(self.n) * self.m3 / self.m2**1.5

    def kurtosis(self):
        """Excess (Fisher) kurtosis [d], = scipy.stats.kurtosis(bias=True); nan where var is 0."""
        return self.n * self.m4 / (self.m2 * self.m2) - 3.0

    def frac_pos(self):
        """Fraction of values > 0 [d]."""
        return self.npos.to(torch.float64) / self.n

    def mean_abs(self):
        """Mean |x| [d]."""
        return self.sum_abs / self.n

    def mean_sq(self):
        """Mean x^2 [d] (= var + mean^2)."""
        return self.m2 / self.n + self.mean * self.mean

    def pooled(self):
        """A d=1 RunningMoments over all values of all dimensions pooled together."""
        p = RunningMoments()
        if self.n == 0:
            return p
        d = self.mean.numel()
        mu = self.mean.mean()
        dl, m2, m3, n = self.mean - mu, self.m2, self.m3, self.n  # shift each dim to the grand mean
        p.n, p.mean = n * d, mu.reshape(1)
        p.m2 = (m2 + n * dl**2).sum().reshape(1)
        p.m3 = (m3 + 3 * dl * m2 + n * dl**3).sum().reshape(1)
        p.m4 = (self.m4 + 4 * dl * m3 + 6 * dl**2 * m2 + n * dl**4).sum().reshape(1)
        p.min, p.max = self.min.min().reshape(1), self.max.max().reshape(1)
        p.npos, p.sum_abs = self.npos.sum().reshape(1), self.sum_abs.sum().reshape(1)
        return p

    def state_dict(self):
        """Plain tensors: n (int64 scalar) plus the KEYS tensors [d] when non-empty."""
        sd = {"n": torch.tensor(self.n, dtype=torch.int64)}
        if self.n:
            sd.update({k: getattr(self, k) for k in self.KEYS})
        return sd

    def load_state_dict(self, sd):
        """Restore from state_dict() output (tensors are cloned)."""
        self.n = int(sd["n"])
        for k in self.KEYS:
            setattr(self, k, sd[k].clone() if self.n else None)
        return self


class RunningHistogram(_Stat):
    """Counts over fixed bin edges, per dimension or pooled, with underflow/overflow/nan counts.

    Bins follow numpy.histogram: [e_i, e_i+1) half-open, the last bin [e_B-1, e_B] closed.
    Values < e_0 are underflow, > e_B overflow, NaN counted separately.
    """

    def __init__(self, edges, per_dim=False):
        """edges [B+1] strictly increasing; per_dim=True keeps counts [d, B], else pooled [B]."""
        self.edges = torch.as_tensor(edges, dtype=torch.float64).flatten()
        assert self.edges.numel() >= 2 and bool((self.edges.diff() > 0).all()), "edges must increase"
        self.per_dim, self.nbins = bool(per_dim), self.edges.numel() - 1
        self.slots = None  # int64 [B+3] or [d, B+3]: underflow, B bins, overflow, nan

    def update(self, x):
        """Add a batch x [..., d]."""
        # float32 values against edges that float32 holds exactly: bucketize in float32 gives the same bins
        exact = x.dtype in (torch.float32, torch.float16, torch.bfloat16) and torch.equal(self.edges.float().double(),
                                                                                         self.edges)
        x = x.reshape(-1, x.shape[-1]).float() if exact else _rows(x)
        B, e = self.nbins, self.edges.to(x.device, x.dtype)
        s = torch.bucketize(x, e, right=True)  # [n, d]: number of edges <= x, 0 = underflow
        s[x == e[-1]] = B  # right edge is inside the last bin, like numpy
        s[x.isnan()] = B + 2
        d = x.shape[1] if self.per_dim else 1
        if self.per_dim:  # give each dimension its own B+3 slots
            s += torch.arange(d, device=x.device) * (B + 3)
        c = torch.bincount(s.flatten(), minlength=d * (B + 3)).reshape(d, B + 3)
        c = c if self.per_dim else c[0]
        self.slots = c if self.slots is None else self.slots + c
        return self

    def merge(self, other):
        """Fold in another histogram with identical edges and per_dim."""
        assert torch.equal(self.edges.cpu(), other.edges.cpu()) and self.per_dim == other.per_dim, "edges differ"
        if other.slots is not None:
            self.slots = other.slots.clone() if self.slots is None else self.slots + other.slots
        return self

    @property
    def counts(self):
        """In-range bin counts [B] or [d, B]."""
        return self.slots[..., 1:-2]

    @property
    def underflow(self):
        """Count of values < edges[0]; scalar or [d]."""
        return self.slots[..., 0]

    @property
    def overflow(self):
        """Count of values > edges[-1]; scalar or [d]."""
        return self.slots[..., -2]

    @property
    def nan(self):
        """Count of NaN values; scalar or [d]."""
        return self.slots[..., -1]

    def quantile(self, q):
        """Estimated q-quantile, 0<q<1 (scalar or [d]), linear within its bin.

        -inf/+inf if it falls in underflow/overflow, nan if empty. The estimate lies in the bin
        holding the order statistic at rank q*N, so the error is at most that bin's width
        (for an interpolated quantile, when its two neighbouring order statistics share or abut a bin).
        """
        full = self.slots[..., :-1].to(torch.float64).reshape(-1, self.nbins + 2)  # [r, B+2]
        cum = full.cumsum(-1)
        t = (q * cum[:, -1]).unsqueeze(1)  # [r, 1] target rank
        j = torch.searchsorted(cum, t).clamp(max=self.nbins + 1)  # first slot with cum >= t
        before = cum.gather(1, j) - full.gather(1, j)
        frac = (t - before) / full.gather(1, j)
        e = self.edges.to(full.device)
        i = (j - 1).clamp(0, self.nbins - 1)
        v = e[i] + frac * (e[i + 1] - e[i])
        v = torch.where(j == 0, -math.inf, torch.where(j == self.nbins + 1, math.inf, v))
        v = torch.where(cum[:, -1:] == 0, math.nan, v).squeeze(1)
        return v if self.per_dim else v[0]

    def state_dict(self):
        """Plain tensors: edges, per_dim, and slots (if non-empty)."""
        sd = {"edges": self.edges, "per_dim": torch.tensor(self.per_dim)}
        if self.slots is not None:
            sd["slots"] = self.slots
        return sd

    def load_state_dict(self, sd):
        """Restore from state_dict() output."""
        self.__init__(sd["edges"], bool(sd["per_dim"]))
        self.slots = sd["slots"].clone() if "slots" in sd else None
        return self


class RunningTopK(_Stat):
    """Per dimension, the k best values seen (largest, smallest, or largest |x|) with row ids.

    Results are sorted best first. Slots not yet filled (fewer than k rows seen) hold value
    -inf (+inf if largest=False) and row id -1. NaNs are ignored. Among tied values the values
    are exact but which row ids are kept is up to torch.topk.
    """

    def __init__(self, k, largest=True, by_abs=False, group_bits=None):
        """k slots per dimension; by_abs ranks by |x| but stores the signed value.

        group_bits: rows whose ids share `row_id >> group_bits` form a group (a document, for row ids
        doc << 24 | position) and at most one row of each group is kept per dimension, its best."""
        self.k, self.largest, self.by_abs = int(k), bool(largest), bool(by_abs)
        self.group_bits = None if group_bits is None or int(group_bits) < 0 else int(group_bits)
        self.fill = -math.inf if self.largest else math.inf
        self.values = None  # [k, d] float64
        self.row_ids = None  # [k, d] int64

    def _key(self, v, ids):
        """Ranking key, bigger is better, -inf for empty slots."""
        key = v.abs() if self.by_abs else v
        key = key if self.largest else -key
        return key.masked_fill(ids < 0, -math.inf)

    def _select(self, v, ids):
        """The best k rows of candidates v, ids [m, d] (one per group when grouped): (values, row_ids) [k, d]."""
        key = self._key(v, ids)
        if self.group_bits is not None and v.shape[0] > self.k:
            key = self._drop_repeats(key, ids)
        idx = key.topk(min(self.k, key.shape[0]), dim=0).indices  # [k, d]
        return v.gather(0, idx), ids.gather(0, idx)

    def _keep(self, v, ids):
        """Keep the best k rows of candidates v, ids [m, d] into self."""
        self.values, self.row_ids = self._select(v, ids)
        return self

    def update(self, x, row_ids):
        """Add a batch x [..., d] with row_ids [...] (int, e.g. global token index >= 0)."""
        x = _rows(x)
        ids = torch.as_tensor(row_ids, dtype=torch.int64, device=x.device).reshape(-1, 1).expand_as(x)
        nan = x.isnan()
        x, ids = x.masked_fill(nan, self.fill), ids.masked_fill(nan, -1)
        if self.values is None:
            self.values = torch.full((self.k, x.shape[1]), self.fill, dtype=torch.float64, device=x.device)
            self.row_ids = torch.full_like(self.values, -1, dtype=torch.int64)
        if self.group_bits is not None:  # first the batch's own best k, one per group: few candidates to merge
            x, ids = self._group_best(x, ids)
        # only the columns where some new value beats the k-th kept one can change: most, once the stream runs
        cols = (self._key(x, ids) > self._key(self.values[-1:], self.row_ids[-1:])).any(0).nonzero().flatten()
        if len(cols) < x.shape[1]:
            if len(cols) == 0:
                return self
            self.values[:, cols], self.row_ids[:, cols] = self._select(
                torch.cat([self.values[:, cols], x[:, cols]]), torch.cat([self.row_ids[:, cols], ids[:, cols]]))
            return self
        return self._keep(torch.cat([self.values, x]), torch.cat([self.row_ids, ids]))

    def _group_best(self, x, ids):
        """Per dimension, the best row of each group in a batch, then the best k of those: [<=k, d]."""
        key = self._key(x, ids)
        groups, inverse = torch.unique(ids.max(1).values >> self.group_bits, return_inverse=True)  # a row's id
        best = torch.full((len(groups), x.shape[1]), -math.inf, dtype=key.dtype, device=x.device)
        best.scatter_reduce_(0, inverse[:, None].expand_as(key), key, "amax")
        rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(key)
        winner = torch.where(key == best[inverse], rows, x.shape[0])          # first row reaching the max
        first = torch.full_like(best, x.shape[0], dtype=torch.int64).scatter_reduce_(
            0, inverse[:, None].expand_as(key), winner, "amin").clamp(max=x.shape[0] - 1)
        v, i = x.gather(0, first), ids.gather(0, first)
        i = i.masked_fill(best == -math.inf, -1)
        top = self._key(v, i).topk(min(self.k, len(groups)), dim=0).indices
        return v.gather(0, top), i.gather(0, top)

    def _drop_repeats(self, key, ids):
        """Key -inf for every candidate whose group already has a better candidate in its column."""
        order = key.argsort(dim=0, descending=True, stable=True)               # [m, d]
        g = (ids >> self.group_bits).gather(0, order)
        m = g.shape[0]
        earlier = torch.ones(m, m, dtype=torch.bool, device=g.device).tril(-1)  # j < i
        repeat = ((g[:, None, :] == g[None, :, :]) & earlier[:, :, None]).any(1)  # [m, d]
        return key.scatter(0, order, key.gather(0, order).masked_fill(repeat, -math.inf))

    def merge(self, other):
        """Fold in another RunningTopK with the same k, largest, by_abs."""
        assert (self.k, self.largest, self.by_abs, self.group_bits) == (other.k, other.largest, other.by_abs,
                                                                          other.group_bits)
        if other.values is None:
            return self
        if self.values is None:
            self.values, self.row_ids = other.values.clone(), other.row_ids.clone()
            return self
        return self._keep(torch.cat([self.values, other.values]), torch.cat([self.row_ids, other.row_ids]))

    def result(self):
        """(values [k, d] float64, row_ids [k, d] int64), best first."""
        return self.values, self.row_ids

    def state_dict(self):
        """Plain tensors: k, largest, by_abs, and values/row_ids (if non-empty)."""
        sd = {"k": torch.tensor(self.k), "largest": torch.tensor(self.largest), "by_abs": torch.tensor(self.by_abs),
              "group_bits": torch.tensor(-1 if self.group_bits is None else self.group_bits)}
        if self.values is not None:
            sd.update(values=self.values, row_ids=self.row_ids)
        return sd

    def load_state_dict(self, sd):
        """Restore from state_dict() output."""
        self.__init__(int(sd["k"]), bool(sd["largest"]), bool(sd["by_abs"]), int(sd.get("group_bits", -1)))
        if "values" in sd:
            self.values, self.row_ids = sd["values"].clone(), sd["row_ids"].clone()
        return self
