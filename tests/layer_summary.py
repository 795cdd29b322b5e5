"""`LayerSummary`: running moments, top-k and a histogram composed into one layer's summary, merged and saved
together. It lives with the tests: it proves that lamina's running statistics (lamina/runningstats.py) compose
and round-trip as a whole. The profile's own per-layer statistics are `lamina/analyses/profile/layer_stats.py`.
"""
import math

import torch

from lamina.runningstats import RunningHistogram, RunningMoments, RunningTopK


class LayerSummary:
    """One layer at a glance: per-dim moments, top-3 |x| over the whole layer (row, dim),
    a pooled log10|x| histogram for the median |x|, and the mean L2 norm of rows.

    Top-3 entries are tracked with the id row_id * d + dim, so row_ids must stay below 2**63 / d.
    """

    @classmethod
    def from_state_dict(cls, sd):
        return cls.__new__(cls).load_state_dict(sd)

    def __init__(self, log10_lo=-10.0, log10_hi=6.0, bins_per_decade=100):
        """Histogram of log10|x| over [log10_lo, log10_hi] with bins_per_decade bins per decade."""
        nb = round((log10_hi - log10_lo) * bins_per_decade)
        self.moments = RunningMoments()
        self.top = RunningTopK(3, largest=True, by_abs=True)  # over [n*d, 1] flattened values
        self.hist = RunningHistogram(torch.linspace(log10_lo, log10_hi, nb + 1, dtype=torch.float64))
        self.d = None
        self.sum_row_norm = torch.zeros((), dtype=torch.float64)

    @property
    def bin_width(self):
        """Histogram bin width in log10 units (the median_abs() error bound)."""
        return float(self.hist.edges[-1] - self.hist.edges[0]) / self.hist.nbins

    def update(self, x, row_ids):
        """Add a batch x [n, d] (or [..., d]) with row_ids [n] (or [...])."""
        x = x.reshape(-1, x.shape[-1]).to(torch.float64)
        d = x.shape[1]
        assert self.d in (None, d), f"width changed: {self.d} -> {d}"
        self.d = d
        ids = torch.as_tensor(row_ids, dtype=torch.int64, device=x.device).reshape(-1)
        a = x.abs()
        self.moments.update(x)
        self.hist.update(a.log10())  # |x| = 0 -> -inf -> underflow
        flat = a.flatten().nan_to_num(nan=-1.0)
        idx = flat.topk(min(3, flat.numel())).indices  # this batch's best candidates
        self.top.update(x.flatten()[idx].unsqueeze(1), ids[idx // d] * d + idx % d)
        self.sum_row_norm = self.sum_row_norm.to(x.device) + x.norm(dim=1).sum()
        return self

    def merge(self, other):
        """Fold in another LayerSummary of the same layer width and histogram edges."""
        if other.d is None:
            return self
        assert self.d in (None, other.d)
        self.d = other.d
        for name in ("moments", "top", "hist"):
            getattr(self, name).merge(getattr(other, name))
        self.sum_row_norm = self.sum_row_norm + other.sum_row_norm.to(self.sum_row_norm.device)
        return self

    def median_abs(self):
        """Median |x| estimated from the log10 histogram.

        Let w = bin_width. When the middle order statistic(s) of |x| fall in the same or
        adjacent bins (always for odd counts), |log10(estimate) - log10(true median)| <= w,
        i.e. relative error <= 10**w - 1 (about 2.3% for the default 100 bins/decade).
        Returns 0.0 if the median is below 10**log10_lo, inf if above 10**log10_hi.
        """
        q = float(self.hist.quantile(0.5))
        return 0.0 if q == -math.inf else 10.0**q

    def state_dict(self):
        """Flat dict of plain tensors with 'moments.', 'top.', 'hist.' prefixes."""
        sd = {"d": torch.tensor(-1 if self.d is None else self.d), "sum_row_norm": self.sum_row_norm}
        for name in ("moments", "top", "hist"):
            sd.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        return sd

    def load_state_dict(self, sd):
        """Restore from state_dict() output."""
        self.__init__()
        for name in ("moments", "top", "hist"):
            sub = {k[len(name) + 1:]: v for k, v in sd.items() if k.startswith(name + ".")}
            getattr(self, name).load_state_dict(sub)
        self.d = None if int(sd["d"]) < 0 else int(sd["d"])
        self.sum_row_norm = sd["sum_row_norm"].clone()
        return self

    def result(self):
        """Plain-Python dict of layer-level (pooled over all dims) statistics."""
        if self.d is None:
            return {"n_rows": 0, "d": None}
        p = self.moments.pooled()
        def f(t):
            return float(t.reshape(-1)[0])
        vals, ids = self.top.result()
        top = [{"value": float(v), "row": int(i) // self.d, "dim": int(i) % self.d}
               for v, i in zip(vals[:, 0].tolist(), ids[:, 0].tolist()) if i >= 0]
        return {
            "n_rows": self.moments.n, "d": self.d,
            "mean": f(p.mean), "std": f(p.std()), "skew": f(p.skew()), "kurtosis": f(p.kurtosis()),
            "min": f(p.min), "max": f(p.max), "frac_pos": f(p.frac_pos()),
            "mean_abs": f(p.mean_abs()), "rms": math.sqrt(f(p.mean_sq())),
            "median_abs": self.median_abs(), "median_abs_log10_err": self.bin_width,
            "mean_row_norm": f(self.sum_row_norm) / self.moments.n,
            "top_abs": top,
        }
