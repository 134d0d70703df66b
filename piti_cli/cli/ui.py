"""Rendering shared by every command: errors, progress bars, tables.

On a terminal progress is a live rich bar; elsewhere (CI, pipes) it is plain log lines,
so logs stay readable.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

from rich.console import Console


def _data_console() -> Console:
    """stdout. On a terminal rich wraps to its width; in a pipe or a file nothing is wrapped or
    cut (tables take their natural width), so scripts and `| cat` get whole lines."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(soft_wrap=True, width=1 << 16)


console = _data_console()
err_console = Console(stderr=True)


def _print_plain(label: str, style: str, message: str) -> None:
    """One line on stderr; `message` is plain text, never markup or emoji codes (file names
    may hold `[/]`, `[bold]` or `:smile:`), and is collapsed to one line."""
    from rich.text import Text

    from piti_cli.errors import one_line

    line = Text(label, style=style)
    line.append(" " + one_line(message))
    err_console.print(line, highlight=False, soft_wrap=True, emoji=False, markup=False)


def print_error(message: str) -> None:
    _print_plain("error:", "bold red", message)


def print_warning(message: str) -> None:
    _print_plain("warning:", "yellow", message)


def print_skipped(skipped, shown: int = 10) -> None:
    """The batch policy's list: one warning line per skipped input (path, why), the first `shown`."""
    for path, why in skipped[:shown]:
        print_warning(f"skipped {path}: {why}")
    if len(skipped) > shown:
        print_warning(f"... and {len(skipped) - shown} more skipped")


ProgressFn = Callable[..., None]


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[ProgressFn]:
    """Yield `update(done, total=None, **fields)`; renders a bar on a TTY, log lines otherwise.

    Extra keyword fields (loss=..., it_s=...) are shown after the bar. Two are special:
    `stage="upsampler"` is shown beside the description, and `eta=seconds` (None: not known
    yet) replaces the estimate from the bar's own rate, for work whose parts run at different
    speeds (the cascade's stages).
    """
    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

        class Left(ProgressColumn):
            def render(self, task):
                eta = task.fields["eta"] if "eta" in task.fields else task.time_remaining
                return f"left {_clock(eta)}"

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            Left(),
            TextColumn("{task.fields[info]}"),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=total, info="")

            def update(done: int, total: int | None = None, **fields) -> None:
                label, special, info = _special(description, fields)
                progress.update(task, completed=done, total=total if total is not None else progress.tasks[0].total,
                                info=info, description=label, **special)

            yield update
    else:
        last = [0.0]

        default_total = total

        def update(done: int, total: int | None = None, **fields) -> None:  # noqa: F811
            now = time.monotonic()
            tot = total if total is not None else default_total
            if now - last[0] < 5.0 and done != tot:
                return
            last[0] = now
            label, special, info = _special(description, fields)
            left = f" left {_clock(special['eta'])}" if "eta" in special else ""
            count = f"{int(done)}/{tot if tot is not None else '?'}"
            print(f"{label}: {count}{left} {info}".rstrip(), file=sys.stderr, flush=True)

        yield update


def _special(description: str, fields: dict) -> tuple[str, dict, str]:
    """(description with the stage, {eta} if given, the other fields as text)."""
    fields = dict(fields)
    stage = fields.pop("stage", None)
    special = {"eta": fields.pop("eta")} if "eta" in fields else {}
    info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    return (f"{description} ({stage})" if stage else description), special, info


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
