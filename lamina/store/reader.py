"""Reading an activation store: one site at a time, memory-mapped, plus the token table.

Every shard is checked against its sidecar's size and sha256, and its header against the sidecar's row count
and the store's sites, dtype and widths, before its first use in a process (`shards.verify_shard`), so a
corrupted, truncated, missing or mismatched shard raises `StoreError` instead of returning wrong numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from lamina.errors import InputError, SiteError, StoreError
from lamina.store.manifest import read_manifest
from lamina.store.shards import bad_sidecars, check_shards, complete_shards, shard_header, shard_path, verify_shard


class ActivationStore:
    """A store folder: `read(site)` -> [rows, ...] over all complete shards, `tokens()` -> DataFrame."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        n_shards = self.manifest["n_shards"]
        self.shards = {i: info for i, info in complete_shards(self.folder).items() if i < n_shards}
        self._expect: dict | None = None

    @property
    def expect(self) -> dict:
        """What every shard's header must hold: the manifest's sites and dtype, the first shard's widths."""
        if self._expect is None:
            expect = {"sites": self.sites, "storage_dtype": self.manifest["settings"]["storage_dtype"], "widths": None}
            if self.shards:
                first = min(self.shards)
                verify_shard(self.folder, first, self.shards[first], expect)
                header = shard_header(shard_path(self.folder, first))
                expect["widths"] = {site: header[site][1][1] for site in self.sites}
            self._expect = expect
        return self._expect

    def verify(self, index: int) -> None:
        """Raise `StoreError` unless shard `index` is sound (checksum, header; once per process and file)."""
        verify_shard(self.folder, index, self.shards[index], self.expect)

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
        bad = bad_sidecars(self.folder)
        if bad:
            raise StoreError(f"{bad[0]} is unreadable or incomplete; re-extract its shard: lamina extract --resume "
                             "with the same settings redoes it")
        parts = []
        for index in sorted(self.shards):
            path = shard_path(self.folder, index)
            self.verify(index)
            try:
                with safe_open(str(path), framework="pt") as f:
                    # get_slice reads only the requested columns' bytes of this one tensor
                    parts.append(f.get_tensor(key) if columns is None else f.get_slice(key)[:, columns])
            except (OSError, SafetensorError) as err:  # the checksum passed, yet the file does not parse
                raise StoreError(f"cannot read {key} from {path}: {str(err).splitlines()[0][:200]}; re-extract "
                                 "it with lamina extract --resume") from None
        if not parts:
            raise InputError(f"{self.folder} has no complete shard yet")
        return torch.cat(parts)

    def read(self, site: str, neurons=None) -> torch.Tensor:
        """Activations of one site over every stored token: [rows, d] (q/k/v: [rows, heads*d_head])."""
        if site not in self.sites:
            raise SiteError(f"site {site} is not in this store; it holds {', '.join(self.sites)}")
        return self._read(site, self._columns(site, neurons))

    def _columns(self, site: str, neurons):
        """`neurons` as a list of column indices, checked against the site's width."""
        if neurons is None:
            return None
        if isinstance(neurons, (int, np.integer)):
            neurons = [neurons]
        try:
            columns = [int(i) for i in neurons]
        except (TypeError, ValueError):
            raise InputError(f"neurons must be a list of integer column indices, not {neurons!r}") from None
        width = self.width(site)
        wrong = [i for i in columns if not 0 <= i < width]
        if wrong:
            raise InputError(f"neuron index {wrong[0]} is out of range for {site}, which has {width} values "
                             f"per token (0..{width - 1})")
        return columns

    def width(self, site: str) -> int:
        """Values per token of `site` in this store (q/k/v: heads * d_head), from the first shard's header."""
        if not self.shards:
            raise InputError(f"{self.folder} has no complete shard yet")
        if site not in self.sites:
            raise SiteError(f"site {site} is not in this store; it holds {', '.join(self.sites)}")
        return int(self.expect["widths"][site])

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
        """Checksums, sizes and headers of every shard; a list of problems (empty when the store is sound)."""
        try:
            expect = self.expect
        except StoreError:                        # the first shard itself is unsound: check it without widths
            expect = {"sites": self.sites, "storage_dtype": self.manifest["settings"]["storage_dtype"],
                      "widths": None}
        return check_shards(self.folder, expect, self.manifest["n_shards"])
