"""The procedural scenes and their measure (`piti_cli.data.scenes`)."""

import numpy as np
import pytest
import torch

from piti_cli.data.scenes import CLASS_COLOURS, colour_accuracy, colour_kept, make_scenes


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


def test_colour_kept_is_one_for_the_originals_and_zero_for_grey():
    images, masks = make_scenes(3, seed=5)
    pictures = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 127.5 - 1.0
    assert colour_kept(pictures, pictures, masks) == pytest.approx(1.0)
    grey = pictures.mean(1, keepdim=True).expand_as(pictures)
    assert colour_kept(grey, pictures, masks) == pytest.approx(0.0, abs=1e-12)


def test_colour_kept_is_the_chroma_ratio_of_region_means_and_ignores_zero_mean_noise():
    images, masks = make_scenes(2, seed=6)
    pictures = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 127.5 - 1.0
    # a float64 restatement: per picture and class, the mean colour's max − min, area-weighted
    def chroma(x):
        total = 0.0
        for b in range(x.shape[0]):
            for c in np.unique(masks[b]):
                mean = x[b].numpy()[:, masks[b] == c].mean(1)
                total += (mean.max() - mean.min()) * (masks[b] == c).sum()
        return total
    pale = 0.5 * pictures + 0.5 * pictures.mean(1, keepdim=True)  # halfway to its own grey
    assert colour_kept(pale, pictures, masks) == pytest.approx(chroma(pale) / chroma(pictures), rel=1e-12)
    assert colour_kept(pale, pictures, masks) == pytest.approx(0.5, rel=1e-9)
    g = torch.Generator().manual_seed(0)
    noisy = pictures + 0.1 * torch.randn(pictures.shape, generator=g, dtype=torch.float64)
    assert colour_kept(noisy, pictures, masks) == pytest.approx(1.0, abs=0.02)


def test_layout_bound_is_the_score_of_painting_each_cell_with_its_word():
    from piti_cli.data.scenes import layout_bound

    halves = np.zeros((1, 256, 256), np.uint8)
    halves[0, 128:] = 1
    assert layout_bound(halves, 2) == 1.0 and layout_bound(halves, 1) == 0.5
    square = np.zeros((1, 256, 256), np.uint8)
    square[0, :96, :96] = 1  # 24² px at 64 px; only the first 16 × 16 cell of a 4 × 4 grid is mostly class 1
    assert layout_bound(square, 4) == 1 - (24 ** 2 - 16 ** 2) / 64 ** 2
    assert layout_bound(square, 8) == 1.0  # 8 × 8 cells of 32 px: the square is three by three of them
