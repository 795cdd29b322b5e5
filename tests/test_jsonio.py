"""One JSON policy for every result: strict JSON, NaN and inf as null, numpy and torch values as plain ones."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lamina.report.jsonio import json_text, write_json


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_numbers_json_cannot_hold_become_null():
    value = {"nan": float("nan"), "np_nan": np.float64("nan"), "f32_nan": np.float32("nan"), "inf": float("inf"),
             "minus_inf": -np.inf, "list": [1.5, float("nan")], "fine": 0.25}
    assert _strict(json_text(value)) == {"nan": None, "np_nan": None, "f32_nan": None, "inf": None,
                                         "minus_inf": None, "list": [1.5, None], "fine": 0.25}


def test_numpy_and_torch_values_become_plain():
    value = {"i": np.int64(7), "f": np.float32(1.5), "b": np.bool_(True), "arr": np.array([[1, 2]]),
             "t": torch.tensor([0.5, float("nan")]), "scalar": torch.tensor(3), "tuple": (1, "a"), 4: "key"}
    got = _strict(json_text(value))
    assert got == {"i": 7, "f": 1.5, "b": True, "arr": [[1, 2]], "t": [0.5, None], "scalar": 3,
                   "tuple": [1, "a"], "4": "key"}
    assert type(got["i"]) is int and type(got["b"]) is bool


def test_write_json_writes_the_same_text(tmp_path):
    path = write_json(tmp_path / "r.json", {"x": [np.nan, 1]})
    assert _strict(path.read_text()) == {"x": [None, 1]}
    with pytest.raises(ValueError, match="not strict"):
        _strict('{"x": NaN}')  # what json.dumps writes by default, refused by the check above
