"""Tests for tracking/data/targets.py: CornerNet radius and Gaussian heatmaps by hand."""
import math

import numpy as np
import pytest

from tracking.data import targets


def _radius_by_hand(w, h, o=0.7):
    """The three 'buggy' CornerNet roots (b + sqrt(b^2 - 4ac)) / 2, written out independently."""
    roots = []
    for a, b, c in [(1, w + h, w * h * (1 - o) / (1 + o)),
                    (4, 2 * (w + h), (1 - o) * w * h),
                    (4 * o, -2 * o * (w + h), (o - 1) * w * h)]:
        roots.append((b + math.sqrt(b * b - 4 * a * c)) / 2)
    return min(roots)


def test_radius_hand_computed_4x4():
    # w = h = 4: root 3 has a = 2.8, b = -11.2, c = -4.8; b^2 - 4ac = 125.44 + 53.76 = 179.2;
    # (-11.2 + sqrt(179.2)) / 2 = 1.09328...; roots 1 and 2 are 7.63 and 14.69.
    assert targets.gaussian_radius(np.array([4.0, 4.0])) == pytest.approx(1.0932803, abs=1e-6)
    assert (-11.2 + math.sqrt(179.2)) / 2 == pytest.approx(1.0932803, abs=1e-6)


@pytest.mark.parametrize('w, h', [(2.0, 3.0), (8.0, 2.0), (0.5, 12.0), (16.0, 16.0), (0.0, 0.0)])
def test_radius_matches_formula(w, h):
    assert targets.gaussian_radius(np.array([w, h])) == pytest.approx(_radius_by_hand(w, h),
                                                                      abs=1e-5)


def test_heatmap_small_radius_by_hand():
    # Box (0.25, 0.25, 0.25, 0.25) on a 16 map: (4, 4, 4, 4) cells, centre (6, 6), radius 1,
    # diameter 3, sigma 0.5: neighbours exp(-1 / 0.5) = exp(-2), diagonals exp(-4).
    maps = targets.gaussian_heatmap(np.array([[0.25, 0.25, 0.25, 0.25]]), 16)
    assert maps.shape == (1, 16, 16) and maps.dtype == np.float32
    expected = np.zeros((16, 16))
    expected[5:8, 5:8] = [[math.exp(-4), math.exp(-2), math.exp(-4)],
                          [math.exp(-2), 1.0, math.exp(-2)],
                          [math.exp(-4), math.exp(-2), math.exp(-4)]]
    np.testing.assert_allclose(maps[0], expected, rtol=1e-6, atol=0)


def test_heatmap_sigma_is_diameter_over_six():
    # (8, 8) cells: radius int(2.33...) = 2, diameter 5, sigma 5/6.
    radius = int(_radius_by_hand(8.0, 8.0))
    assert radius == 2
    maps = targets.gaussian_heatmap(np.array([[0.25, 0.25, 0.5, 0.5]]), 16)[0]
    sigma = 5 / 6
    cy = cx = 8  # 4 + 8 / 2
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            inside = abs(dx) <= radius and abs(dy) <= radius
            value = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) if inside else 0.0
            assert maps[cy + dy, cx + dx] == pytest.approx(value, rel=1e-6, abs=1e-12)
    assert maps.sum() == pytest.approx(maps[6:11, 6:11].sum())


def test_centre_rounds_half_to_even():
    # Scaled x + w/2 = 6 + 0.5 = 6.5 -> 6; 7 + 0.5 = 7.5 -> 8.
    boxes = np.array([[6 / 16, 6 / 16, 1 / 16, 1 / 16], [7 / 16, 7 / 16, 1 / 16, 1 / 16]])
    maps = targets.gaussian_heatmap(boxes, 16)
    assert np.unravel_index(np.argmax(maps[0]), (16, 16)) == (6, 6)
    assert np.unravel_index(np.argmax(maps[1]), (16, 16)) == (8, 8)


def test_one_peak_per_map_and_border_cropping():
    # Centre (0, 0) with radius 2: only the bottom-right quarter of the kernel is kept.
    maps = targets.gaussian_heatmap(np.array([[-0.25, -0.25, 0.5, 0.5]]), 16)[0]
    kernel = targets.gaussian_kernel(2)
    np.testing.assert_allclose(maps[:3, :3], kernel[2:, 2:], rtol=1e-6)
    assert maps[3:].sum() == 0 and maps[:, 3:].sum() == 0
    assert (maps == 1).sum() == 1 and maps[0, 0] == 1
    # Centre just outside the map (x = 16): its tail still enters the last columns.
    maps = targets.gaussian_heatmap(np.array([[0.75, 0.25, 0.5, 0.5]]), 16)[0]
    assert (maps == 1).sum() == 0
    np.testing.assert_allclose(maps[6:11, 14:], kernel[:, :2], rtol=1e-6)


def test_zero_size_box_gives_single_cell():
    maps = targets.gaussian_heatmap(np.array([[0.5, 0.5, 0.0, 0.0]]), 20)[0]
    assert maps[10, 10] == 1 and maps.sum() == 1


def test_bad_input_raises():
    with pytest.raises(ValueError):
        targets.gaussian_heatmap(np.zeros((2, 3)), 16)
    with pytest.raises(ValueError):
        targets.gaussian_heatmap(np.array([[np.nan, 0, 0.1, 0.1]]), 16)
