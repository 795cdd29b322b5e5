"""Parse-time checks of option values: paths by what the option needs, devices, dtypes, corpora, fractions.

Each check is a typer callback, so a bad value is refused while the command line is parsed, before any
model loads, as one line (exit status 2). A path check carries its rule in `path_rule` (the options test
walks the app and refuses a Path option without one):

- `input_file`: exists, is a file, is readable;
- `input_folder`: exists, is a folder, is readable;
- `input_path`: exists and is readable, a file or a folder;
- `output_folder`: a folder that can receive results (`report/output.check_output`: not a file, writable,
  not a full disk); it need not exist yet;
- `output_file`: a file that can be written: not a folder, its nearest existing parent a writable folder.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import typer

PATH_RULES = ("input_file", "input_folder", "input_path", "output_folder", "output_file")
DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def _one_path(rule: str, value: Path) -> Path:
    """`value` checked by `rule`; a typer.BadParameter (one line, exit 2) when it fails."""
    path = Path(value)
    if rule == "output_folder":
        from lamina.errors import InputError
        from lamina.report.output import check_output

        try:
            return check_output(path, what="folder")
        except InputError as err:
            raise typer.BadParameter(str(err)) from None
    if rule == "output_file":
        from lamina.report.output import existing_ancestor

        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder, not a file")
        base = existing_ancestor(path.parent)
        if not base.is_dir() or not os.access(base, os.W_OK):
            raise typer.BadParameter(f"{path} cannot be written: {base} is not a writable folder")
        return path
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if rule == "input_file" and not path.is_file():
        raise typer.BadParameter(f"{path} is a folder; give a file")
    if rule == "input_folder" and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; give a folder")
    if not os.access(path, os.R_OK):
        raise typer.BadParameter(f"{path} is not readable")
    return path


def path_check(rule: str):
    """A typer callback that checks a Path option (or a list of them) by `rule` (one of PATH_RULES)."""
    if rule not in PATH_RULES:
        raise ValueError(f"unknown path rule {rule!r}")

    def check(value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [_one_path(rule, v) for v in value]
        return _one_path(rule, value)

    check.path_rule = rule
    return check


def corpus_check(value):
    """--corpus: builtin, hf:NAME[:SPLIT], or a file or folder that exists."""
    if value is None or value == "builtin" or str(value).startswith("hf:"):
        return value
    if not Path(value).exists():
        raise typer.BadParameter(f"corpus {value} does not exist (give a .txt/.jsonl file, a folder, builtin or hf:NAME)")
    return value


corpus_check.path_rule = "input_path"


def pairs_check(value):
    """patch --pairs: 'negation' (the built-in pairs) or a TSV file that exists."""
    if value is None or value == "negation":
        return value
    return str(_one_path("input_file", Path(value)))


pairs_check.path_rule = "input_file"


def device_check(value):
    """--device: cpu, cuda, cuda:N or mps, and available on this machine."""
    if value is None:
        return value
    if not DEVICE.fullmatch(value):
        raise typer.BadParameter(f"'{value}' is not a device; give cpu, cuda, cuda:N or mps")
    if value == "cpu":
        return value
    import torch

    if value == "mps" and not torch.backends.mps.is_available():
        raise typer.BadParameter("mps is not available on this machine; use --device cpu")
    if value.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= n:
            have = f"{n} CUDA device(s) (cuda:0 to cuda:{n - 1})" if n else "no CUDA device"
            raise typer.BadParameter(f"{value} is not available: this machine has {have}; use --device cpu")
    return value


def dtype_check(value):
    """--dtype: one of the model dtypes lamina.load knows."""
    from lamina.models.registry import DTYPES

    if value is not None and value not in DTYPES:
        raise typer.BadParameter(f"'{value}' is not a dtype; choose one of {', '.join(DTYPES)}")
    return value


def unit_interval(value):
    """A number strictly between 0 and 1 (an FDR level)."""
    if value is not None and not 0 < value < 1:
        raise typer.BadParameter(f"must be strictly between 0 and 1, not {value}")
    return value


def positive_number(value):
    """A finite number > 0 (a learning rate)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a finite number > 0, not {value}")
    return value


def non_negative_number(value):
    """A finite number >= 0 (a penalty weight)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0, not {value}")
    return value


# The numeric callbacks bound their values as `min=`/`max=` do (the options test reads them): (low, high) and
# whether each end is open (the bound itself refused).
unit_interval.bounds, unit_interval.open_ends = (0, 1), (True, True)
positive_number.bounds, positive_number.open_ends = (0, None), (True, False)
non_negative_number.bounds, non_negative_number.open_ends = (0, None), (False, False)
