"""A uniform random sample of rows that merges exactly: the same rows whatever the batch order or the split
between workers, because each row's key is a fixed hash of its id (a mergeable companion of runningstats)."""
import numpy as np
import torch


def row_hash(row_ids):
    """A fixed pseudo-random number in [0, 1) per row id (splitmix64): the same for a row in any run or split."""
    z = np.asarray(row_ids, dtype=np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return torch.from_numpy((z >> np.uint64(11)).astype(np.float64) / float(1 << 53))


class RowReservoir:
    """A uniform random sample of rows with their values: the `size` rows of smallest `row_hash`.

    The hash fixes each row's key, so the sample does not depend on batch order or on how rows were split
    between workers: merging two reservoirs gives exactly the reservoir of the union."""

    def __init__(self, size):
        self.size = int(size)
        self.keys = self.row_ids = self.values = None  # [r], [r], [r, d] (r <= size)

    def _keep(self, keys, ids, values):
        idx = keys.topk(min(self.size, keys.numel()), largest=False).indices
        idx = idx[keys[idx].argsort()]  # smallest key first: any prefix is itself a uniform sample
        self.keys, self.row_ids, self.values = keys[idx], ids[idx], values[idx]
        return self

    def update(self, x, row_ids):
        """Add a batch x [n, d] (or [..., d]) with row_ids [n] (or [...])."""
        ids = torch.as_tensor(row_ids, dtype=torch.int64).reshape(-1)
        keys = row_hash(ids.numpy())
        x = x.reshape(-1, x.shape[-1])
        if self.keys is not None and len(self.keys) == self.size:  # full: only rows under the largest key enter
            enter = keys < self.keys[-1]
            keys, ids, x = keys[enter], ids[enter], x[enter]
        x = x.to(torch.float64)
        if self.keys is not None:
            keys, ids, x = torch.cat([self.keys, keys]), torch.cat([self.row_ids, ids]), torch.cat([self.values, x])
        return self._keep(keys, ids, x)

    def merge(self, other):
        if other.keys is None:
            return self
        if self.keys is None:
            return self._keep(other.keys.clone(), other.row_ids.clone(), other.values.clone())
        return self._keep(torch.cat([self.keys, other.keys]), torch.cat([self.row_ids, other.row_ids]),
                          torch.cat([self.values, other.values]))

    def state_dict(self):
        sd = {"size": torch.tensor(self.size)}
        if self.keys is not None:
            sd.update(keys=self.keys, row_ids=self.row_ids, values=self.values)
        return sd

    @classmethod
    def from_state_dict(cls, sd):
        return cls.__new__(cls).load_state_dict(sd)

    def load_state_dict(self, sd):
        self.__init__(int(sd["size"]))
        if "keys" in sd:
            self.keys, self.row_ids, self.values = sd["keys"].clone(), sd["row_ids"].clone(), sd["values"].clone()
        return self
