"""Constant-memory statistics of one layer's activations, cheap enough to run beside the forward pass.

Per batch x [n, d] everything is computed in float32 in a few fused passes, then folded into float64
accumulators (Pébay merges from `runningstats`), so a profile costs a small fraction of a forward pass:
    pooled moments over all values (mean, std, skew, kurtosis, fraction > 0)
    mean L2 norm of a token's vector
    max |x| per dimension (the layer x dimension map)
    top-k |x| over the whole layer with (row id, dimension)
    median |x| from a uniform random sample of rows (thinned to between `sample_cap` values and twice it)
"""
from __future__ import annotations

import numpy as np
import torch

from lamina.runningstats import RunningMoments, RunningTopK


class LayerStats:
    def __init__(self, top_k: int = 16, sample_cap: int = 1 << 17, seed: int = 0):
        self.moments = RunningMoments()  # pooled: d = 1
        self.top = RunningTopK(top_k, largest=True, by_abs=True)
        self.dim_max_abs: torch.Tensor | None = None  # [d]
        self.norm_sum = 0.0
        self.n_rows = 0
        self.sample: list[torch.Tensor] = []
        self.sample_size, self.sample_cap, self.rate = 0, sample_cap, 1.0
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, x: torch.Tensor, row_ids: torch.Tensor) -> None:
        """Add x [n, d] (any float dtype) whose rows have global ids row_ids [n]."""
        x = x.float()
        n, d = x.shape
        if n == 0:
            return
        flat = x.reshape(-1)
        mean = flat.sum() / flat.numel()
        c = flat - mean
        c2 = c * c
        sign = torch.sign(flat)  # npos = (sum(sign) + sum(sign^2)) / 2: a third the cost of (x > 0).sum()
        batch = RunningMoments()  # this batch's central moments (dot products: fused, no temporaries)
        batch.n, batch.mean = flat.numel(), mean.double().reshape(1)
        batch.m2 = c2.sum().double().reshape(1)
        batch.m3 = torch.dot(c2, c).double().reshape(1)
        batch.m4 = torch.dot(c2, c2).double().reshape(1)
        low, high = torch.aminmax(flat)
        batch.min, batch.max = low.double().reshape(1), high.double().reshape(1)
        absx = x.abs()                                     # [n, d]
        batch.npos = ((sign.sum() + torch.dot(sign, sign)) / 2).round().long().reshape(1)
        batch.sum_abs = absx.sum().double().reshape(1)
        self.moments.merge(batch)

        dim_max = absx.amax(0)
        self.dim_max_abs = dim_max if self.dim_max_abs is None else torch.maximum(self.dim_max_abs, dim_max)
        self.norm_sum += float(torch.linalg.vector_norm(x, dim=1).sum())
        self.n_rows += n
        # The top-k values of the layer lie in the k rows with the largest row maxima: search only those.
        rows = absx.amax(1).topk(min(self.top.k, n)).indices           # [k]
        candidates = absx[rows].reshape(-1)                             # [k * d]
        best = candidates.topk(min(self.top.k, candidates.numel())).indices
        row, dim = rows[best // d], best % d
        self.top.update(x[row, dim].unsqueeze(1), row_ids[row] * d + dim)
        self._sample(absx)

    def _sample(self, absx: torch.Tensor) -> None:
        """Keep a uniform sample of |x| for the median, drawn as whole rows (tokens): every value of the
        layer has the same chance to be in it, and one gather of rows costs far less than one of values."""
        n, d = absx.shape
        if self.rate == 1.0:  # until the cap is reached the sample is every value: the median is exact
            self.sample.append(absx.reshape(-1).clone())
            self.sample_size += absx.numel()
        else:  # each row independently with probability `rate`
            keep = torch.rand(n, generator=self.generator) < self.rate
            if keep.any():
                self.sample.append(absx[keep].reshape(-1))
                self.sample_size += int(keep.sum()) * d
        self._fit(d)

    def _thin(self, keep: float, d: int) -> None:
        """Keep each sampled row with probability `keep` (the sampling rate becomes rate x keep)."""
        thinned = []
        for s in self.sample:
            rows = s.reshape(-1, d)
            thinned.append(rows[torch.rand(len(rows), generator=self.generator) < keep].reshape(-1))
        self.sample, self.rate = thinned, self.rate * keep
        self.sample_size = sum(s.numel() for s in self.sample)

    def _fit(self, d: int) -> None:
        """Past twice the cap, halve the rate and thin the sample by whole rows (amortised: rare)."""
        while self.sample_size > 2 * self.sample_cap and self.sample_size > 2 * d:
            self._thin(0.5, d)

    def merge(self, other: LayerStats) -> LayerStats:
        """Fold in the statistics of other rows (another process's, another actor's); in place, returns self.

        Moments, the top-k and the maxima merge exactly (up to float64 rounding). The median's samples are
        brought to the lower of the two rates and joined, so the result is again a uniform sample of rows;
        while neither side has thinned (up to `sample_cap` values in all) it is every value, as in one pass."""
        if other.n_rows == 0:
            return self
        self.moments.merge(other.moments)
        self.top.merge(other.top)
        self.dim_max_abs = (other.dim_max_abs.clone() if self.dim_max_abs is None
                            else torch.maximum(self.dim_max_abs, other.dim_max_abs))
        self.norm_sum += other.norm_sum
        self.n_rows += other.n_rows
        d = other.dim_max_abs.numel()
        theirs = LayerStats.from_state_dict(other.state_dict())  # a copy to thin, with our generator
        theirs.generator = self.generator
        if theirs.rate > self.rate:
            theirs._thin(self.rate / theirs.rate, d)
        elif self.rate > theirs.rate:
            self._thin(theirs.rate / self.rate, d)
        self.sample += theirs.sample
        self.sample_size += theirs.sample_size
        self._fit(d)
        return self

    def state_dict(self) -> dict:
        """Plain tensors and numbers (what crosses the network from a Ray actor); see `from_state_dict`."""
        return {"moments": self.moments.state_dict(), "top": self.top.state_dict(), "dim_max_abs": self.dim_max_abs,
                "norm_sum": self.norm_sum, "n_rows": self.n_rows, "rate": self.rate, "sample_cap": self.sample_cap,
                "sample": torch.cat(self.sample) if self.sample else torch.zeros(0)}

    @classmethod
    def from_state_dict(cls, sd: dict, seed: int = 0) -> LayerStats:
        stats = cls(top_k=int(sd["top"]["k"]), sample_cap=sd["sample_cap"], seed=seed)
        stats.moments = RunningMoments.from_state_dict(sd["moments"])
        stats.top = RunningTopK.from_state_dict(sd["top"])
        stats.dim_max_abs, stats.norm_sum, stats.n_rows = sd["dim_max_abs"], sd["norm_sum"], sd["n_rows"]
        stats.rate = sd["rate"]
        stats.sample = [sd["sample"]] if sd["sample"].numel() else []
        stats.sample_size = sd["sample"].numel()
        return stats

    def result(self) -> dict:
        """Plain numbers: the laminar profile row of this layer (before massive-activation labels)."""
        m = self.moments
        sample = torch.cat(self.sample) if self.sample else torch.zeros(1)
        values, ids = self.top.result()
        d = self.dim_max_abs.numel()
        top = [{"value": float(v), "row": int(i) // d, "dim": int(i) % d}
               for v, i in zip(values[:, 0].tolist(), ids[:, 0].tolist()) if i >= 0]
        return {
            "n_tokens": self.n_rows,
            "mean_token_norm": self.norm_sum / max(self.n_rows, 1),
            "mean": float(m.mean[0]),
            "std": float(m.std()[0]),
            "skew": float(m.skew()[0]),
            "kurtosis": float(m.kurtosis()[0]),
            "frac_positive": float(m.frac_pos()[0]),
            "top1_abs": abs(top[0]["value"]) if top else float("nan"),
            "top2_abs": abs(top[1]["value"]) if len(top) > 1 else float("nan"),
            "top3_abs": abs(top[2]["value"]) if len(top) > 2 else float("nan"),
            "median_abs": float(np.median(sample.numpy())),  # a linear-time partition, not a sort
            "median_sample_size": int(sample.numel()),
            "top": top,
        }
