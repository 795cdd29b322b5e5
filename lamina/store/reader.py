"""Reading an activation store: one site at a time, memory-mapped, plus the token table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from lamina.errors import InputError, SiteError
from lamina.store.manifest import read_manifest
from lamina.store.shards import check_shards, complete_shards, shard_path

META = ("token_id", "row_id")  # per-row metadata stored in every shard beside the sites


class ActivationStore:
    """A store folder: `read(site)` -> [rows, ...] over all complete shards, `tokens()` -> DataFrame."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.shards = complete_shards(self.folder)

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["settings"]["sites"])

    @property
    def complete(self) -> bool:
        return len(self.shards) == self.manifest["n_shards"]

    @property
    def n_rows(self) -> int:
        return sum(info["n_rows"] for info in self.shards.values())

    def _read(self, key: str, columns=None) -> torch.Tensor:
        parts = []
        for index in sorted(self.shards):
            with safe_open(str(shard_path(self.folder, index)), framework="pt") as f:
                # get_slice reads only the requested columns' bytes of this one tensor
                parts.append(f.get_tensor(key) if columns is None else f.get_slice(key)[:, columns])
        if not parts:
            raise InputError(f"{self.folder} has no complete shard yet")
        return torch.cat(parts)

    def read(self, site: str, neurons=None) -> torch.Tensor:
        """Activations of one site over every stored token: [rows, d] (q/k/v: [rows, heads*d_head])."""
        if site not in self.sites:
            raise SiteError(f"site {site} is not in this store; it holds {', '.join(self.sites)}")
        return self._read(site, neurons)

    def numpy(self, site: str, neurons=None) -> np.ndarray:
        return self.read(site, neurons).float().numpy()

    def tokens(self):
        """pandas DataFrame, one row per stored token: doc, doc_id, position, token_id."""
        import pandas as pd

        from lamina.data.windows import split_row_id

        doc, position = split_row_id(self._read("row_id").numpy())
        doc_ids = np.asarray(self.manifest["doc_ids"], dtype=object)
        return pd.DataFrame({
            "doc": doc,
            "doc_id": doc_ids[doc],
            "position": position,
            "token_id": self._read("token_id").numpy(),
        })

    def check(self) -> list[str]:
        """Checksums and sizes of every shard; a list of problems (empty when the store is sound)."""
        return check_shards(self.folder)
