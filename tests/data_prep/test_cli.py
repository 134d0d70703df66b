import subprocess
import sys

import numpy as np
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from piti_cli.cli.main import app


def test_prep_commands_end_to_end(tmp_path, reference_dir):
    runner = CliRunner()
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.array([[0, 255], [181, 5]], np.uint8), mode="L").save(labels / "a.png")
    res = runner.invoke(app, ["prep", "masks", str(labels), str(tmp_path / "color")])
    assert res.exit_code == 0, res.output
    assert tuple(np.asarray(Image.open(tmp_path / "color" / "a.png"))[0, 0]) == (128, 0, 0)

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skdata.coffee()).save(photos / "coffee.png")
    res = runner.invoke(app, ["prep", "degrade", str(photos), str(tmp_path / "lr"), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(tmp_path / "lr" / "coffee.png")).shape == (64, 64, 3)

    res = runner.invoke(app, ["prep", "hed", str(photos), str(tmp_path / "sk"), "--backend", "gradient"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["prep", "pack", "generic", str(photos), str(tmp_path / "packs"),
                              "--conditions", str(tmp_path / "sk")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "packs" / "generic_all.h5").is_file()


def test_bad_choice_is_a_usage_error_naming_the_option(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "piti_cli", "prep", "degrade", str(tmp_path / "x"),
                           str(tmp_path / "y"), "--l0-mode", "wrong"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    named = [line for line in proc.stderr.splitlines() if "--l0-mode" in line]
    assert len(named) == 1 and "'wrong' is not one of 'correct', 'piti-compat'" in named[0]
    assert not (tmp_path / "y").exists()
