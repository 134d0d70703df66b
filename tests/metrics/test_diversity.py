"""How `piti eval lpips` groups a flat folder of samples by condition."""

import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from piti_cli.errors import InputError
from piti_cli.metrics.diversity import group_samples


def _png(path, record=None):
    info = PngInfo()
    if record is not None:
        info.add_text("piti", json.dumps(record))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, pnginfo=info)
    return path


def test_piti_pictures_are_grouped_by_the_condition_their_record_names(tmp_path):
    """`piti sample` writes scene_0.png .. scene_3.png for four conditions, one sample each:
    four conditions, not one called `scene` with four samples; `-n 2` writes COND_k.png."""
    for i in range(4):
        _png(tmp_path / f"scene_{i}.png", {"condition": f"scene_{i}", "sample_index": 0})
    with pytest.raises(InputError, match="no condition with 2 or more samples"):
        group_samples(tmp_path)
    for k in range(2):
        _png(tmp_path / f"scene_9_{k}.png", {"condition": "scene_9", "sample_index": k})
    assert group_samples(tmp_path) == {"scene_9": [tmp_path / "scene_9_0.png", tmp_path / "scene_9_1.png"]}


def test_pictures_without_a_record_are_grouped_by_their_names(tmp_path):
    for name in ("a_0", "a_1", "b_0"):
        _png(tmp_path / f"{name}.png")
    assert group_samples(tmp_path) == {"a": [tmp_path / "a_0.png", tmp_path / "a_1.png"]}
