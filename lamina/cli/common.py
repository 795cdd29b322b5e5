"""What every command shares: the typer `app` and its `store` sub-app, the consoles, common options,
`user_errors` (a LaminaError becomes one line on stderr and exit status 2), `load` and `dump`."""
from __future__ import annotations

import functools

import typer
from rich.console import Console

from lamina.errors import LaminaError
from lamina.report.jsonio import json_text

app = typer.Typer(
    help="lamina: read a transformer language model's insides correctly, layer by layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(emoji=False)  # never turn ":llama:" in a model name into an emoji
err_console = Console(stderr=True, emoji=False)

ModelOpt = typer.Option("smollm2-135m", "--model", "-m", help="Model spec: smollm2-135m, random:<type>, hub id or folder.")
SeedOpt = typer.Option(0, "--seed", help="Seed for random:<type> models.")
JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON object.")
TextOpt = typer.Option(None, "--text", "-t", help="Input text (repeatable).")
FileOpt = typer.Option(None, "--file", "-f", help="File with one input text per non-blank line.")
TruncOpt = typer.Option(False, "--truncate", help="Cut texts longer than the model's context (with a warning).")

CorpusOpt = typer.Option("builtin", "--corpus", "-c", help="builtin, a .txt/.jsonl file, a folder, or hf:NAME[:SPLIT].")
TextFieldOpt = typer.Option("text", "--text-field", help="JSONL field holding the text.")
ContextOpt = typer.Option(128, "--context", help="Tokens per window.")
StrideOpt = typer.Option(None, "--stride", help="Tokens between window starts (default: --context, no overlap).")
BatchOpt = typer.Option(8, "--batch-size", help="Windows per forward pass.")
SkipFirstOpt = typer.Option(False, "--skip-first", help="Leave each window's first token out of statistics.")
PackOpt = typer.Option(False, "--pack", help="Join documents into full windows (no padding; windows cross documents).")
MaxTokOpt = typer.Option(None, "--max-tokens", help="Stop after this many tokens.")
MaxDocsOpt = typer.Option(None, "--max-docs", help="Use only the first N documents.")


@app.callback()
def root() -> None:
    """lamina: read a transformer language model's insides correctly, layer by layer."""


def user_errors(fn):
    """Turn LaminaError into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LaminaError as err:
            from rich.markup import escape  # a message may hold brackets: pip install 'lamina[linguistics]'

            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def load(model: str, seed: int):
    """`lamina.load` behind a spinner on stderr."""
    import lamina

    with err_console.status(f"loading {model}..."):
        return lamina.load(model, seed=seed)


def dump(obj) -> str:
    """Results as indented strict JSON text (NaN as null; see report/jsonio.py)."""
    return json_text(obj)


store_app = typer.Typer(help="Inspect activation stores.", no_args_is_help=True)
app.add_typer(store_app, name="store")
