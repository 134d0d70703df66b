"""The procedural scenes and their measure (`piti_cli.data.scenes`)."""

import numpy as np
import pytest
import torch

from piti_cli.data.scenes import CLASS_COLOURS, colour_accuracy, make_scenes


def test_colour_accuracy_of_a_flat_picture_is_the_class_share():
    _, masks = make_scenes(4, seed=3)
    flat = torch.tensor(CLASS_COLOURS[2] / 127.5 - 1.0, dtype=torch.float32).view(1, 3, 1, 1).expand(4, 3, 64, 64)
    share = float((masks[:, 2::4, 2::4] == 2).mean())  # pixel centres of the 64×64 grid
    assert 0.0 < share < 1.0
    assert colour_accuracy(flat, masks) == pytest.approx(share)


def test_rendered_scenes_score_near_one_and_shuffled_ones_near_chance():
    images, masks = make_scenes(16, seed=4)
    pictures = torch.from_numpy(images[:, 2::4, 2::4].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    assert colour_accuracy(pictures, masks) > 0.99  # textures (±20%) keep the nearest colour
    assert colour_accuracy(pictures, np.roll(masks, 1, axis=0)) < 0.6  # someone else's mask
