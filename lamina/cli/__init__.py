"""The command line: every verb is a thin shell over the Python function of the same name.

Importing a command module registers its commands on `app`; the import order below is the order of
`lamina --help` (sub-apps such as `store` are listed last).
"""
from lamina.cli.common import app
from lamina.cli import verify  # noqa: F401  (the imports register the commands, in this order)
from lamina.cli import vocab  # noqa: F401
from lamina.cli import corpus  # noqa: F401
from lamina.cli import neurons  # noqa: F401
from lamina.cli import tune  # noqa: F401
from lamina.cli import browse  # noqa: F401
from lamina.cli import causal  # noqa: F401
from lamina.cli import patch  # noqa: F401
from lamina.cli import tune_compare  # noqa: F401

__all__ = ["app", "main"]


def main() -> None:
    app()
