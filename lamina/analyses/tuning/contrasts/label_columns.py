"""The labels contrast: any label column of the corpus's token table, or of a user table with a `text` column."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lamina.analyses.tuning.contrasts.corpus_words import corpus_counts, corpus_table, word_samples
from lamina.analyses.tuning.contrasts.sample_set import (
    CORPUS_UNITS,
    SAMPLE_COLUMNS,
    WORD_COLUMNS,
    SampleSet,
    check_pooling,
    encode_text,
    finish_rows,
    last_real,
    subsample,
    token_fields,
)
from lamina.data.labels import COLUMNS as LABEL_COLUMNS
from lamina.errors import InputError


def _binary_or_continuous(values: pd.Series, column: str):
    """(label array, kind, (A, B) names) for a label column; raises for unusable columns."""
    v = values.dropna()
    if v.dtype == bool or set(pd.unique(v)) <= {0, 1}:
        return v.astype(bool), "binary", (column, f"not {column}")
    if pd.api.types.is_numeric_dtype(v):
        return v.astype(float), "continuous", None
    uniq = sorted(pd.unique(v).astype(str))
    if len(uniq) == 2:
        return v.astype(str) == uniq[1], "binary", (uniq[1], uniq[0])
    raise InputError(f"label column '{column}' has {len(uniq)} values ({', '.join(uniq[:6])}...); give a binary "
                     f"or numeric column, or COLUMN=VALUE (e.g. {column}={uniq[0]})")


def labels(tokenizer, label_column: str | None = None, table=None, docs=None, word_pooling: str = "last",
           max_docs=None, max_tokens=None, max_per_group=None, max_length: int = 128, counts=None,
           seed: int = 0, unit_columns=(), control_columns=(), **_) -> SampleSet:
    """A user label: a column of the corpus's token table, or of a table (CSV/TSV/Parquet/JSONL) with `text`.

    `COLUMN=VALUE` makes a binary label (rows equal to VALUE are group A). A user table gives one sample
    per row, read at its `position` column if it has one (a token index into the model input), else at
    the final token; its rows are independent unless `unit_columns` (one or two columns of the table) name
    their units of replication (and `control_columns` its design factors). A table column whose name lamina
    uses for its own sample columns (`word`, `token`, `position`, ...; SAMPLE_COLUMNS) is kept as
    `table.NAME` beside lamina's own, and `--label-column` / `--unit-column` / `--control NAME` find it there
    (`table_column`). Corpus labels have the corpus units (word type x paragraph).
    """
    if not label_column:
        raise InputError("--contrast labels needs --label-column (a column of the token table or of --table)")
    check_pooling(word_pooling)
    column, _, value = label_column.partition("=")
    counts = counts if counts is not None else corpus_counts(tokenizer)
    if table is None:
        available = LABEL_COLUMNS + ["log_freq"]
        if column not in available:
            raise InputError(f"unknown label column '{column}'; the token table has {', '.join(available)}")
        texts, tab = corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
        if column in WORD_COLUMNS:
            samples = word_samples(tab, word_pooling)
            reading = f"each spaCy word, read at its {word_pooling} sub-token"
        else:
            samples = tab[tab["char_len"] > 0].rename(columns={"doc": "text"}).copy()
            samples["positions"] = [(int(p),) for p in samples["position"]]
            reading = "every token with a visible character"
        reading += f" of {len(texts)} corpus paragraphs"
    else:
        texts, samples = _user_table(tokenizer, table, column, max_length, counts, tuple(unit_columns or ()),
                                     tuple(control_columns or ()))
        reading = f"one sample per row of {Path(table).name}, at its position column or final token"
        column = table_column(samples, column)
    samples, empty_note = _drop_empty_labels(samples, column, from_table=table is not None)
    if value:
        lab, kind, groups = samples[column].astype(str) == value, "binary", (value, f"not {value}")
    else:
        lab, kind, groups = _binary_or_continuous(samples[column], column)
    samples = samples.loc[lab.index].copy()
    samples["label"] = lab
    samples["group"] = np.where(lab, groups[0], groups[1]) if kind == "binary" else ""
    type_column = "word" if table is None and column in WORD_COLUMNS else "token"
    rows = finish_rows(samples, type_column)
    rows, notes = subsample(rows, max_per_group, seed) if kind == "binary" else (rows, [])
    notes = [empty_note, *notes] if empty_note else notes
    units = CORPUS_UNITS if table is None else tuple(unit_columns or ())
    return SampleSet("labels", texts, rows, kind, groups, label_column, reading, word_pooling=word_pooling,
                     max_length=max_length, notes=notes, units=units)


def _is_empty(values: pd.Series) -> np.ndarray:
    """Cells that hold nothing: missing (NaN, None) or only white space."""
    return (values.isna() | values.astype(str).str.strip().eq("")).to_numpy()


def _rows_text(rows) -> str:
    rows = [int(r) for r in rows]
    return ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def _drop_empty_labels(samples: pd.DataFrame, column: str, from_table: bool):
    """Samples without those whose label is empty, and the note that counts them (None when there are none)."""
    empty = _is_empty(samples[column])
    if not empty.any():
        return samples, None
    where = f" (--table rows {_rows_text(samples['text'][empty] + 1)})" if from_table else ""
    return (samples[~empty].copy(),
            f"{int(empty.sum())} sample(s) with an empty '{column}' left out{where}")


def _user_table(tokenizer, path, column: str, max_length: int, counts, unit_columns: tuple = (),
                control_columns: tuple = ()):
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix == ".jsonl":
            df = pd.read_json(path, lines=True)
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read --table {path}: {str(err).splitlines()[0][:200]}") from None
    if "text" not in df.columns:
        raise InputError(f"--table {path} has no 'text' column (columns: {', '.join(map(str, df.columns))})")
    if column not in df.columns:
        raise InputError(f"unknown label column '{column}'; --table {path.name} has "
                         f"{', '.join(map(str, df.columns))}")
    for flag, names in (("--unit-column", unit_columns), ("--control", control_columns)):
        for u in names:
            if u not in df.columns:
                raise InputError(f"unknown {flag} '{u}'; --table {path.name} has {', '.join(map(str, df.columns))}")
            if u == column:
                raise InputError(f"'{u}' is the label column; it cannot also be a {flag}")
    carried = [column] + [u for u in dict.fromkeys(unit_columns + control_columns) if u != column]
    empty = np.flatnonzero(_is_empty(df["text"]))
    if len(empty):
        raise InputError(f"--table {path.name} has an empty 'text' in row(s) {_rows_text(empty + 1)} (data rows, "
                         "counting from 1): fill them or remove those rows")
    rows = []
    for i in range(len(df)):  # by column name, not itertuples: any column name works ("my label", "1st")
        text = str(df["text"].iat[i])
        ids, _, special = encode_text(tokenizer, text, max_length)
        p = int(df["position"].iat[i]) if "position" in df.columns else last_real(special)
        if not 0 <= p < len(ids) or special[p]:
            raise InputError(f"--table row {i + 1}: position {p} is not a token of its text (0-{len(ids) - 1})")
        rows.append({"text": i, "positions": (p,), "position": p, **token_fields(tokenizer, ids, p, counts),
                     **{_stored_name(u): df[u].iat[i] for u in carried}})
    return [str(t) for t in df["text"]], pd.DataFrame(rows)


def _stored_name(name: str) -> str:
    """A table column's name among the sample columns: `table.NAME` when lamina uses NAME itself."""
    return f"table.{name}" if name in SAMPLE_COLUMNS else name


def table_column(rows: pd.DataFrame, name: str) -> str:
    """The sample column holding a user's column `name`: the table's own (`table.NAME`) when there is one."""
    return f"table.{name}" if f"table.{name}" in rows else name
