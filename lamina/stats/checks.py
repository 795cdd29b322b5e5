"""Input checks and the per-neuron table layout shared by every statistics module.

Conventions: ``X`` is a finite float array ``[n_samples, n_neurons]`` (one layer's activations);
``y`` a binary label (bool or 0/1; ``y == 1`` is the positive group, differences are pos - neg);
per-neuron results are DataFrames indexed by neuron (index name ``neuron``); degenerate neurons
get NaN statistics and a flag column, never a made-up number.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamina.errors import LaminaError

MIN_GROUP_SIZE = 3


class TooFewSamplesError(LaminaError, ValueError):
    """Raised when a group (or the whole sample) is too small for the requested test."""


# --------------------------------------------------------------------------- validation
def check_activations(X) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_samples, n_neurons], got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("X has no neurons (0 columns)")
    if not np.isfinite(X).all():
        bad = np.unique(np.nonzero(~np.isfinite(X))[1])
        raise ValueError(f"X contains NaN or inf values (in neurons {bad[:10].tolist()}"
                         f"{'...' if bad.size > 10 else ''}); drop or impute them first")
    return X


def check_length(v, n: int, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} entries but X has {n} samples (rows)")
    return v


def check_binary(y, n: int, min_per_class: int = MIN_GROUP_SIZE, why: str = "") -> np.ndarray:
    y = check_length(y, n, "y")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"y must be binary (bool or 0/1); got values {np.unique(y)[:5]}")
        y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("y contains a single class; a contrast needs both classes")
    if min(n_pos, n_neg) < min_per_class:
        raise TooFewSamplesError(f"each group needs at least {min_per_class} samples{why}; "
                                 f"got {n_pos} positive and {n_neg} negative")
    return y


def check_continuous(z, n: int, name: str) -> np.ndarray:
    z = check_length(z, n, name).astype(float)
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf values")
    if np.ptp(z) == 0:
        raise ValueError(f"{name} is constant; a correlation with it is undefined")
    return z


def neuron_frame(columns: dict, **attrs) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    df.index.name = "neuron"
    df.attrs.update(attrs)
    return df


def is_constant(A: np.ndarray) -> np.ndarray:
    """Per column: all values equal up to floating-point rounding (a few ulps of the magnitude)."""
    return np.ptp(A, axis=0) <= 8 * np.finfo(float).eps * np.abs(A).max(axis=0)


def paired_halves(X: np.ndarray, y: np.ndarray):
    if y.sum() != (~y).sum():
        raise ValueError(f"paired design needs equal group sizes (the i-th positive row is "
                         f"paired with the i-th negative row); got {y.sum()} and {(~y).sum()}")
    return X[y], X[~y]


