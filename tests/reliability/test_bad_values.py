"""Bad values inside otherwise readable files: each is one plain line naming the file (no
internal error), and a path with a colon is a path."""

from __future__ import annotations

import pickle

import h5py
import numpy as np

from piti_cli.data.scenes import make_scenes, write_pack
from tests.reliability.conftest import check_refused, invoke, nothing_finished


def test_a_pack_in_a_folder_with_a_colon_is_read(tmp_path):
    images, masks = make_scenes(2, seed=2)
    pack = write_pack(tmp_path / "a:b" / "pack.h5", images, masks)
    out = tmp_path / "out"
    result = invoke("sample", "--cond", f"{pack}:0-1", "--out", out, "--steps", "2", "--upsample-steps", "2",
                    "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.glob("*.png")] == ["scene_00000.png"]


def test_a_nan_palette_is_refused_naming_the_pack(tmp_path):
    images, masks = make_scenes(2, seed=2)
    pack = write_pack(tmp_path / "pack.h5", images, masks)
    with h5py.File(pack, "r+") as f:
        palette = f["meta/palette"][()].astype(np.float64)
        palette[1, 0] = np.nan
        del f["meta/palette"]
        f["meta/palette"] = palette
    result = invoke("sample", "--cond", pack, "--out", tmp_path / "out", "--steps", "2")
    check_refused(result, [str(pack), "/meta/palette"], code=1)
    assert nothing_finished(tmp_path / "out")


def test_a_depth_array_of_strings_is_one_line(tmp_path):
    view = tmp_path / "diode" / "val" / "indoors" / "scene_0" / "scan_0" / "v0"
    view.parent.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(view.with_name("v0.png"))
    np.save(view.with_name("v0_depth.npy"), np.array([["a", "b"], ["c", "d"]]))
    np.save(view.with_name("v0_depth_mask.npy"), np.ones((2, 2)))
    np.save(view.with_name("v0_normal.npy"), np.zeros((2, 2, 3)))
    result = invoke("prep", "depth", tmp_path / "diode" / "val", tmp_path / "out", "--strict")
    check_refused(result, ["v0_depth.npy", "not numbers"], code=1)


def test_perceptual_weights_that_are_a_pickle_are_one_line(tmp_path):
    from piti_cli.errors import InputError
    from piti_cli.train.aux_losses import vgg19_conv22

    bad = tmp_path / "vgg.pt"
    bad.write_bytes(pickle.dumps({"weight": object()}))
    try:
        vgg19_conv22(str(bad))
    except InputError as err:
        assert str(bad) in str(err) and "--perceptual-weights" in str(err)
    else:
        raise AssertionError("a pickle was accepted as VGG weights")


def test_a_full_disk_that_names_no_file_names_the_output_folder(tmp_path):
    import errno

    import pytest

    from piti_cli.errors import describe_os_error
    from piti_cli.io_utils import output_lock

    with pytest.raises(OSError) as caught:
        with output_lock(tmp_path / "out"):
            raise OSError(errno.ENOSPC, "No space left on device")
    line = describe_os_error(caught.value)
    assert str(tmp_path / "out") in line and "no space left" in line
