"""The `piti` command: a thin Typer front over the core, and its one error boundary.

Each command module owns one sub-app (or one command) and registers itself here.
Nothing heavy is imported at module level, so `piti --help` stays fast and imports no torch.

The boundary (`PitiGroup.invoke`, around every command): a `PitiError` or a file-system
`OSError` (disk full, not writable, not a folder) prints one plain line naming the file and
the problem and exits 1; anything else is a bug: one line saying so, exit 70, the traceback
only under `piti --debug` or `PITI_DEBUG=1`. `run` adds SIGINT/SIGTERM: one line saying the
run was interrupted and where its finished files are, exit 130 / 143.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from piti_cli.version import __version__
from piti_cli.cli.options import CommandGroup
from piti_cli.cli import app as app_cmd, edit, eval as eval_cmd, prep, sample, train, weights


def _debug(ctx: typer.Context | None = None) -> bool:
    return os.environ.get("PITI_DEBUG", "") not in ("", "0") or bool(ctx and ctx.params.get("debug"))


def report(err: BaseException, debug: bool = False) -> int:
    """Print `err` the way the boundary does; return the exit code."""
    from piti_cli.cli.ui import print_error
    from piti_cli.errors import BUG_REPORT, EXIT_BUG, EXIT_USER, PitiError, brief, describe_os_error

    if debug:
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, PitiError):
        print_error(str(err))
        return err.exit_code
    if isinstance(err, OSError):
        print_error(describe_os_error(err))
        return EXIT_USER
    print_error(f"internal error (a bug in piti, not in your input): {type(err).__name__}: "
                f"{brief(str(err), 300)}; {BUG_REPORT}")
    return EXIT_BUG


HELP_NAMES = ["-h", "--help"]


# `piti --help` lists the commands in the order of the work (data, training, pictures, checks).
WORKFLOW = ("prep", "finetune", "upsample-train", "sample", "edit", "app", "eval", "weights")


class PitiGroup(CommandGroup):
    """The root group: every command runs inside this boundary."""

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW), n))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.TyperException as err:  # Typer's choice check words its message "Value error, ..."
            if isinstance(getattr(err, "message", None), str):
                err.message = err.message.removeprefix("Value error, ")
            raise
        except (typer.Exit, typer.Abort):
            raise  # usage errors and explicit exits: Typer prints and exits as usual
        except BrokenPipeError:
            raise  # `piti ... | head`: Typer exits quietly
        except Exception as err:  # noqa: BLE001 - this is the boundary
            raise typer.Exit(report(err, _debug(ctx))) from None


app = typer.Typer(
    name="piti",
    cls=PitiGroup,
    help="Pretraining-based image-to-image translation (PITI) on GLIDE: "
    "prepare data, finetune, sample and evaluate.",
    no_args_is_help=True,
    add_completion=True,  # piti --install-completion [bash|zsh|fish|powershell]
    pretty_exceptions_enable=False,
    # Plain click rendering (public Typer option): usage errors are one plain line
    # (`Error: Invalid value for '--x': ...`), help is plain text that pipes well.
    rich_markup_mode=None,
    context_settings={"help_option_names": HELP_NAMES},
)

for module in (sample, edit, prep, eval_cmd, weights, train, app_cmd):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"piti {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", metavar="", help="Show the full traceback of an error (also: PITI_DEBUG=1)."
    ),
) -> None:
    """Pretraining-based image-to-image translation (PITI) on GLIDE."""


def _interrupt_message(err) -> str:
    from piti_cli.io_utils import active_outputs

    name = signal.Signals(err.signum).name
    where = f"; the files finished so far are complete in {active_outputs[-1]}/" if active_outputs else ""
    return f"interrupted by {name}{where}; no half-written file was left"


def run() -> None:
    """Console-script entry point: the boundary plus SIGINT/SIGTERM handling.

    Typer's standalone mode already turns usage errors into exit code 2 with a message.
    """
    from piti_cli.errors import EXIT_SIGINT, EXIT_SIGTERM, Interrupted

    def _raise(signum, _frame):
        raise Interrupted(signum, EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM)

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)
    try:
        app()
    except Interrupted as err:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C must not cut the message
        from piti_cli.cli.ui import print_error

        print_error(_interrupt_message(err))
        sys.exit(err.exit_code)
