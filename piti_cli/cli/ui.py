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

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    # One line, no markup interpretation: file names may contain brackets.
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False, soft_wrap=True)


ProgressFn = Callable[..., None]


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[ProgressFn]:
    """Yield `update(done, total=None, **fields)`; renders a bar on a TTY, log lines otherwise.

    Extra keyword fields (loss=..., it_s=...) are shown after the bar.
    """
    if err_console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=total, info="")

            def update(done: int, total: int | None = None, **fields) -> None:
                info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
                progress.update(task, completed=done, total=total if total is not None else progress.tasks[0].total, info=info)

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
            info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
            print(f"{description}: {done}/{tot if tot is not None else '?'} {info}".rstrip(), file=sys.stderr, flush=True)

        yield update


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
