import os
import subprocess
import sys

SCRIPT = """
import sys
sys.argv = ['piti'] + sys.argv[1:]
from piti_cli.cli import main
try:
    main.run()
except SystemExit:
    pass
print('TORCH_IMPORTED' if 'torch' in sys.modules else 'NO_TORCH')
"""


def _run(*args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120)


def test_help_imports_no_torch():
    result = _run("--help")
    assert "Usage" in result.stdout
    assert result.stdout.strip().endswith("NO_TORCH")


def test_every_command_help_imports_no_torch():
    import typer

    from piti_cli.cli.main import app

    names = sorted(typer.main.get_command(app).commands)
    assert "weights" in names
    for name in names:
        result = _run(name, "--help")
        assert "Usage" in result.stdout, (name, result.stderr[-500:])
        assert result.stdout.strip().endswith("NO_TORCH"), name


def test_unknown_command_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "piti_cli", "no-such-command"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_module_entry_point_and_version():
    result = subprocess.run([sys.executable, "-m", "piti_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("piti ")


def test_root_has_debug_and_usage_errors_are_plain_text():
    result = subprocess.run([sys.executable, "-m", "piti_cli", "sample", "--cond", "x.png", "--eta", "nan"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "╭" not in result.stderr  # no rich panel around the message
    assert "Error: Invalid value for '--eta': nan is not a finite number" in result.stderr.splitlines()
    assert "--debug" in _run("--help").stdout


def test_shell_completion_script_is_offered():
    piti = os.path.join(os.path.dirname(sys.executable), "piti")  # the console script pip installed
    command = [piti] if os.path.exists(piti) else [sys.executable, "-m", "piti_cli"]
    result = subprocess.run([*command, "--show-completion", "bash"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "SHELL": "/bin/bash"})
    assert result.returncode == 0 and "complete -o default -F" in result.stdout


def test_help_lists_commands_in_workflow_order_with_whole_sentences():
    from typer.testing import CliRunner

    from piti_cli.cli.main import WORKFLOW, app

    runner = CliRunner()
    out = runner.invoke(app, ["--help"], terminal_width=80).output
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.startswith("  ") and
              not line.startswith("   ")]
    assert listed == list(WORKFLOW)
    for group in ("", "prep", "weights", "eval", "finetune"):
        text = runner.invoke(app, [group, "--help"] if group else ["--help"], terminal_width=80).output
        commands = text.split("Commands:")[1]
        assert "..." not in commands, group  # no summary cut short
        assert max(len(line) for line in text.splitlines()) <= 80, group


def test_a_choice_error_is_one_plain_sentence():
    result = _run("sample", "--sampler", "foo")
    line = [x for x in result.stderr.splitlines() if x.startswith("Error")][0]
    assert line == "Error: Invalid value for '--sampler': 'foo' is not one of 'ancestral', 'ddim', 'dpmpp-2m', 'dpmpp-3m'."


def _all_commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, path + (name,))


def test_every_help_names_values_as_click_does_and_fits_80_columns():
    """No Typer-isms (`{GEN}`, `<str>`, `<list[Path]>`) in any usage line or option table; an
    optional argument is bracketed, a repeatable one ends in `...`; every line fits 80 columns."""
    import re

    import typer
    from typer.testing import CliRunner

    from piti_cli.cli.main import app

    runner = CliRunner()
    seen = 0
    for path, _ in _all_commands(typer.main.get_command(app)):
        text = runner.invoke(app, [*path, "--help"], terminal_width=80).output
        assert text.startswith("Usage: piti"), path
        usage = text.splitlines()[0]
        assert "{" not in usage and "<" not in usage, usage
        assert not re.search(r"<(str|int|float|bool|path|list)", text), (path, text)
        assert max(len(line) for line in text.splitlines()) <= 80, path
        seen += 1
    assert seen >= 20
    hed = runner.invoke(app, ["prep", "hed", "--help"], terminal_width=80).output
    assert hed.splitlines()[0] == "Usage: piti prep hed [OPTIONS] SRC [OUT]"
    assert "--backend [hed|gradient]" in hed
    hashes = runner.invoke(app, ["weights", "hash", "--help"], terminal_width=80).output
    assert hashes.splitlines()[0] == "Usage: piti weights hash [OPTIONS] FILE..."
    sample = runner.invoke(app, ["sample", "--help"], terminal_width=80).output
    assert re.search(r"-b, --batch-size INTEGER RANGE\s", sample)
