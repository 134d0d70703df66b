"""The `piti` command: a thin Typer front over the core.

Each command module owns one sub-app (or one command) and registers itself here.
Nothing heavy is imported at module level, so `piti --help` stays fast and imports no torch.
"""

from __future__ import annotations

import sys

import typer

from piti_cli import __version__
from piti_cli.cli import edit, eval as eval_cmd, prep, sample, train, weights

app = typer.Typer(
    name="piti",
    help="Pretraining-based image-to-image translation (PITI) on GLIDE: "
    "prepare data, finetune, sample and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (sample, edit, prep, eval_cmd, weights, train):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"piti {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Pretraining-based image-to-image translation (PITI) on GLIDE."""


def run() -> None:
    """Console-script entry point: user-facing errors become one red line and exit code 1.

    Typer's standalone mode already turns usage errors into exit code 2 with a message.
    """
    from piti_cli.errors import PitiError

    try:
        app()
    except PitiError as err:
        from piti_cli.cli.ui import print_error

        print_error(str(err))
        sys.exit(err.exit_code)
