"""A `lamina tune --out` folder: the one writer of its tables and the one reader of them.

    write_tune_tables(result, out)  -> {name: path}   neurons.csv/.parquet, laminar.csv, top_neurons.csv,
                                                        samples.csv (rows + text_content), null_counts.csv
    read_tune_run(folder)           -> (neurons DataFrame, settings dict)
    read_tune_samples(folder)       -> TuneSamples: the texts and sample rows the run read (positions as tuples)
    read_laminar(folder)            -> the per-layer table (laminar.csv), or None

Every reader refuses a folder that is not a tune run with one sentence (InputError). The HTML page, the figure
and tuning.json's examples are the report's (`report/tuning_report.py`), which calls the writer here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lamina.errors import InputError

NEURONS, NEURONS_CSV, LAMINAR, SAMPLES, SETTINGS = (
    "neurons.parquet", "neurons.csv", "laminar.csv", "samples.csv", "tuning.json")


def flat(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and tuples as space-separated strings (CSV/Parquet friendly)."""
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (list, tuple))).any():
            out[col] = out[col].map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    return out


def write_tune_tables(result, out: Path) -> dict[str, Path]:
    """The tables of a TuningResult in `out` (the files `read_tune_run` and `read_tune_samples` read)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = {"neurons": out / NEURONS_CSV, "neurons_parquet": out / NEURONS, "laminar": out / LAMINAR,
         "top": out / "top_neurons.csv", "samples": out / SAMPLES, "null": out / "null_counts.csv"}
    result.neurons.to_csv(p["neurons"], index=False)
    result.neurons.to_parquet(p["neurons_parquet"], index=False)
    result.laminar.to_csv(p["laminar"], index=False)
    result.top.to_csv(p["top"], index=False)
    samples = result.samples
    flat(samples.rows).assign(text_content=[samples.texts[t] for t in samples.rows["text"]]).to_csv(p["samples"],
                                                                                                   index=False)
    null = pd.DataFrame(result.null_counts, columns=[f"layer_{L}" for L in result.settings["layers"]])
    null.to_csv(p["null"], index_label="permutation")
    return p


def _check_folder(folder) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder; give the --out folder of a `lamina tune` run")
    return folder


def read_tune_run(folder) -> tuple[pd.DataFrame, dict]:
    """(per-neuron table, settings) of a `tune --out` folder; InputError for a folder that is not one."""
    folder = _check_folder(folder)
    if (folder / NEURONS).is_file():
        neurons = pd.read_parquet(folder / NEURONS)
    elif (folder / NEURONS_CSV).is_file():
        neurons = pd.read_csv(folder / NEURONS_CSV)
    else:
        raise InputError(f"'{folder}' holds no {NEURONS} or {NEURONS_CSV}; give the --out folder of a "
                         "`lamina tune` run")
    missing = [c for c in ("layer", "neuron") if c not in neurons.columns]
    if missing:
        raise InputError(f"'{folder}': the neurons table has no column {missing[0]}; is it a `lamina tune` run?")
    settings = {}
    if (folder / SETTINGS).is_file():
        try:
            settings = json.loads((folder / SETTINGS).read_text()).get("settings", {})
        except (ValueError, AttributeError):
            raise InputError(f"'{folder / SETTINGS}' is not the JSON `lamina tune` writes") from None
    return neurons, settings


@dataclass
class TuneSamples:
    """The samples a tune run read: its texts (by text index) and one row per sample (positions as tuples)."""

    texts: dict[int, str]
    rows: pd.DataFrame


def read_tune_samples(folder) -> TuneSamples:
    """The texts and sample rows of a tune run (samples.csv); InputError when the folder has none."""
    folder = _check_folder(folder)
    path = folder / SAMPLES
    if not path.is_file():
        raise InputError(f"'{folder}' holds no {SAMPLES}: the samples of a tune run (rerun `lamina tune --out`)")
    rows = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in ("text", "positions", "position", "text_content") if c not in rows.columns]
    if missing:
        raise InputError(f"'{path}' has no column {missing[0]}; rerun `lamina tune --out` with this version")
    rows["positions"] = rows["positions"].map(lambda s: tuple(int(float(x)) for x in str(s).split()))
    texts = dict(zip(rows["text"].astype(int), rows["text_content"].astype(str)))
    return TuneSamples(texts, rows.drop(columns="text_content"))


def read_laminar(folder) -> pd.DataFrame | None:
    """The run's per-layer table (laminar.csv), None when the folder has none."""
    path = Path(folder) / LAMINAR
    return pd.read_csv(path) if path.is_file() else None
