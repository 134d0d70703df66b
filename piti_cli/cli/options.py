"""Option checks shared by the commands, all at parse time (before torch is imported).

Fixed sets of values are `Literal` types, which Typer turns into choices (listed in `--help`,
refused with the list otherwise). Numbers that must be finite or positive get a callback;
devices are checked by their spelling here and by `piti_cli.runtime.resolve_device` later.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Literal, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from piti_cli.choices import NllCdf, Precision, Sampler, SamplePrecision, TimestepSampler  # noqa: F401  (the CLI takes them from here)

Stage = Literal["encoder", "joint", "pretrain"]
Degradation = Literal["bsr", "bicubic"]
InputKind = Literal["mask", "sketch", "depth-normal"]
MaskDataset = Literal["coco-stuff", "ade20k"]
PackDataset = Literal["coco-stuff", "ade20k", "diode", "generic"]
GenericCondition = Literal["sketch", "rgb", "mask"]
HedBackend = Literal["hed", "gradient"]
L0Mode = Literal["correct", "piti-compat"]
Features = Literal["inception", "clip", "both"]
LpipsNet = Literal["alex", "vgg"]
Perceptual = Literal["vgg", "lpips", "none"]

DEVICE_HELP = "auto (CUDA when present, else CPU) | cpu | cuda | cuda:N."
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: Optional[str]) -> Optional[str]:
    if value is not None and not _DEVICE.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a device; choose auto, cpu, cuda or cuda:N")
    return value


def number(minimum: float | None = None, *, above: bool = False, maximum: float | None = None) -> Callable:
    """Callback: a finite number (None passes), at least `minimum` (greater when `above`),
    at most `maximum`. NaN and ±inf are refused: they would reach the pictures."""

    def check(value):
        if value is None:
            return value
        if isinstance(value, (list, tuple)):
            return type(value)(check(v) for v in value)
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number")
        if minimum is not None and (value <= minimum if above else value < minimum):
            raise typer.BadParameter(f"{value} must be {'above' if above else 'at least'} {minimum:g}")
        if maximum is not None and value > maximum:
            raise typer.BadParameter(f"{value} must be at most {maximum:g}")
        return value

    return check


def file_size(value: str) -> str:
    """--max-file-size: a whole number with b, kb, mb or gb (as Gradio reads it)."""
    if not re.fullmatch(r"\s*\d+\s*(b|kb|mb|gb)\s*", value.lower()):
        raise typer.BadParameter(f"{value!r} is not a size; write e.g. 20mb, 500kb or 1048576b")
    return value


def preset_name(value: Optional[str]) -> Optional[str]:
    """--preset: a known preset or alias (the model table is pure data: no torch)."""
    from piti_cli.models.config import ALIASES, PRESETS

    if value is not None and value not in PRESETS and value not in ALIASES:
        raise typer.BadParameter(f"{value!r} is not a preset; known: {', '.join(PRESETS)}")
    return value


def multiple_of_16(value: int) -> int:
    """--condition-size: 0 (the preset's) or a positive multiple of 16 (the encoder's stem)."""
    if value % 16:
        raise typer.BadParameter(f"{value} is not a multiple of 16")
    return value


def rates(value: list[str]) -> list[str]:
    """--ema-rate values: numbers in (0, 1)."""
    for text in value or []:
        try:
            rate = float(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not 0.0 < rate < 1.0:
            raise typer.BadParameter(f"{text} must lie strictly between 0 and 1")
    return value


def flag(default: bool, *decls: str, help: str, **kw) -> typer.models.OptionInfo:
    """A boolean flag whose help shows no `<bool>` value (a flag takes none)."""
    return typer.Option(default, *decls, help=help, metavar="", **kw)


def respacing(value: Optional[str]) -> Optional[str]:
    """--steps / --upsample-steps / --sample-steps: one of the respacing forms (`250`, `ddim50`,
    `fast27`, `10,10,3`) with every count at least 1 (`0`, `ddim0`, `10,0` would leave the
    sampler no step). What depends on the model (a DDIM count its steps cannot stride to) is
    the core's to say."""
    if value is None:
        return value
    if not re.fullmatch(r"\s*(ddim\d+|fast27|\d+(\s*,\s*\d+)*)\s*", value):
        raise typer.BadParameter(f"{value!r}: expected a step count or respacing such as 250, ddim50, fast27 or 10,10,3")
    if any(int(n) < 1 for n in re.findall(r"\d+", value.replace("fast27", ""))):
        raise typer.BadParameter(f"{value!r}: every step count must be at least 1")
    return value


def given_options(ctx: typer.Context) -> set[str]:
    """The parameter names the user really set (on the command line or from the environment).
    Typer 0.29 carries its own copy of click, so the ParameterSource enum is taken from the
    context's own answer, not from `click.core`."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source != type(source).DEFAULT:
            given.add(name)
    return given


# Click's names for value types (what `--help` showed across the ecosystem before Typer's
# `<str>`): the usage line and the option table speak these, never Python's type names.
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}


def value_name(param, ctx) -> str:
    """What an option's value is called in `--help`: its metavar when it has one (a flag's is
    empty), `[a|b]` for a choice, else Click's upper-case type name (`TEXT`, `INTEGER RANGE`,
    `PATH`); a repeatable option names one value."""
    if param.metavar is not None:
        return param.metavar
    label = re.sub(r"^list\[(.*)\]$", r"\1", param.display_type(ctx).strip("<>"))
    if param.type_descriptor.is_choice:
        return f"[{label}]"
    return " ".join(_TYPE_NAMES.get(word, word.upper()) for word in label.split())


def argument_name(param) -> str:
    return param.metavar or param.name.upper()


def usage_pieces(command, ctx) -> list[str]:
    """`[OPTIONS]`, then each argument: NAME when required, [NAME] when not, NAME... for several."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = argument_name(param) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def format_parameters(command, ctx, formatter) -> None:
    """The Arguments and Options sections, values named by `value_name`."""
    def join(decls):  # short spellings first, as Click lists them: `-b, --batch-size`
        return ", ".join(sorted(decls, key=lambda d: len(d) - len(d.lstrip("-"))))

    args, opts = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            args.append((argument_name(param) + ("..." if param.nargs != 1 else ""), record[1]))
            continue
        names = " / ".join(join(decls) for decls in (param.opts, param.secondary_opts) if decls)
        value = "" if param.is_flag or param.count else value_name(param, ctx)
        opts.append((f"{names} {value}".rstrip(), record[1]))
    for title, rows in (("Arguments", args), ("Options", opts)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class Command(TyperCommand):
    """A command whose `--help` reads like Click's and pip's: `Usage: piti eval fid [OPTIONS]
    GEN`, optional arguments in brackets, `...` for several, and option values named
    `TEXT`/`INTEGER`/`[a|b]` instead of Typer's `{GEN}` and `<list[str]>`. Every `piti`
    command uses it (`cls=Command`)."""

    def collect_usage_pieces(self, ctx):
        return usage_pieces(self, ctx)

    def format_options(self, ctx, formatter):
        format_parameters(self, ctx, formatter)


class CommandGroup(TyperGroup):
    """A command group with `Command`'s help, listing each command's whole first sentence
    (click cuts them to fit the terminal): every `piti` group uses it."""

    def collect_usage_pieces(self, ctx):
        return usage_pieces(self, ctx) + [self.subcommand_metavar]

    def format_options(self, ctx, formatter):
        format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx, formatter):
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=1000)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
