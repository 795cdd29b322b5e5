"""The command line: every verb is a thin shell over the Python function of the same name.

Importing a command module registers its commands on `app`; the import order below is the order of
`lamina --help` (sub-apps such as `store` are listed last).
"""
from lamina.cli import (
    browse,  # noqa: F401
    causal,  # noqa: F401
    corpus,  # noqa: F401
    neurons,  # noqa: F401
    patch,  # noqa: F401
    tune,  # noqa: F401
    tune_compare,  # noqa: F401
    verify,  # noqa: F401  (the imports register the commands, in this order)
    vocab,  # noqa: F401
)
from lamina.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
