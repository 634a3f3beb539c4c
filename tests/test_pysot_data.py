"""pysot's training crops, augmentation and pair sampler (tracking/data/augment.py,
tracking/data/pysot_pairs.py): boxes follow the pixels, samples are pure in (seed, index)."""
from __future__ import annotations

import math

import ml_collections
import numpy as np
import pytest

from tracking.data import augment
from tracking.data.pysot_pairs import PysotPairSampler
from tracking.data.sequence import Sequence


def _white_box_image(h, w, box_xywh):
    image = np.zeros((h, w, 3), np.uint8)
    x, y, bw, bh = box_xywh
    image[y:y + bh, x:x + bw] = 255
    return image


def _bright_extent(image):
    """(x1, y1, x2, y2) of the pixels brighter than half, as corners of the pixel grid."""
    ys, xs = np.nonzero(image[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def test_siamfc_crop_centres_and_scales_the_target():
    """A 20x10 target: s_z = sqrt(35 * 25) = 29.58 px, so the 511 crop covers s_z * 511 / 127
    = 119.0 frame pixels and the target becomes (20, 10) * 127 / s_z = (85.9, 42.9) px wide,
    centred at (255, 255)."""
    image = _white_box_image(80, 100, (40, 30, 20, 10))
    crop, box = augment.siamfc_crop(image, np.array([40.0, 30.0, 20.0, 10.0]))
    s_z = math.sqrt(35 * 25)
    np.testing.assert_allclose(box, [255 - 10 * 127 / s_z, 255 - 5 * 127 / s_z,
                                     255 + 10 * 127 / s_z, 255 + 5 * 127 / s_z])
    assert crop.shape == (511, 511, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(_bright_extent(crop), box, atol=3)


def test_augment_without_randomness_cuts_the_centre():
    """No shift/scale: the 255 input is the 254-px window around (255, 255) of the 511 crop,
    i.e. corners shift by -128; a flip mirrors the box about the crop's last column."""
    crop = _white_box_image(511, 511, (200, 230, 90, 40))
    box = np.array([200.0, 230.0, 290.0, 270.0])
    out, out_box = augment.augment(np.random.default_rng(0), crop, box, 255,
                                   augment.AugmentParams())
    assert out.shape == (255, 255, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out_box, box - 128)
    np.testing.assert_allclose(_bright_extent(out), out_box, atol=1)
    flipped, flipped_box = augment.augment(np.random.default_rng(0), crop, box, 255,
                                           augment.AugmentParams(flip=1.0))
    np.testing.assert_allclose(flipped_box, [254 - 162, 102, 254 - 72, 142])
    np.testing.assert_array_equal(flipped, out[:, ::-1])


def test_shift_and_scale_move_the_box_with_the_pixels():
    crop = _white_box_image(511, 511, (220, 240, 70, 30))
    box = np.array([220.0, 240.0, 290.0, 270.0])
    params = augment.AugmentParams(shift=64, scale=0.18)
    for seed in range(5):
        out, out_box = augment.augment(np.random.default_rng(seed), crop, box, 255, params)
        np.testing.assert_allclose(_bright_extent(out), out_box, atol=1.5)


def test_motion_blur_kernel_sums_to_one():
    for seed in range(5):
        kernel = augment.motion_blur_kernel(np.random.default_rng(seed))
        size = kernel.shape[0]
        assert size % 2 == 1 and 5 <= size <= 45
        np.testing.assert_allclose(kernel.sum(), 1.0)
        assert np.count_nonzero(kernel) == 2 * size - 1


def _data_config(neg):
    params = dict(shift=0.0, scale=0.0, blur=0.0, flip=0.0, color=1.0)
    return ml_collections.ConfigDict(dict(
        neg=neg, gray=0.0, template=dict(params, shift=4.0, scale=0.05),
        search=dict(params, shift=64.0, scale=0.18, blur=0.2)))


@pytest.fixture(scope='module')
def sequences():
    rng = np.random.default_rng(0)
    out = []
    for s in range(3):
        boxes = np.array([[20 + 3 * t + 10 * s, 25 + 2 * t, 24, 16] for t in range(12)], float)
        frames = np.stack([_white_box_image(96, 128, tuple(int(v) for v in b)) for b in boxes])
        frames = np.maximum(frames, rng.integers(0, 60, frames.shape, dtype=np.uint8))
        out.append(Sequence(f'seq{s}', frames, boxes))
    return out


def test_sampler_is_pure_in_seed_and_index(sequences):
    sampler = PysotPairSampler([sequences], [1.0], [5], _data_config(0.2), 127, 255, seed=3)
    a, b = sampler.sample(7), sampler.sample(7)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a['template'].shape == (127, 127, 3) and a['search'].shape == (255, 255, 3)
    other = PysotPairSampler([sequences], [1.0], [5], _data_config(0.2), 127, 255, seed=4)
    assert not np.array_equal(other.sample(7)['search'], a['search'])
    # neg = 0.2: 40 draws give Binomial(40, 0.2) negatives, mean 8, 2..16 with probability 0.9975;
    # neg = 1 gives only negatives.
    negatives = [int(sampler.sample(i)['negative']) for i in range(40)]
    assert 2 <= sum(negatives) <= 16, negatives
    always = PysotPairSampler([sequences], [1.0], [5], _data_config(1.0), 127, 255, seed=3)
    assert [int(always.sample(i)['negative']) for i in range(5)] == [1] * 5


def test_positive_search_box_covers_the_target(sequences):
    sampler = PysotPairSampler([sequences], [1.0], [5], _data_config(0.0), 127, 255, seed=0)
    for i in range(5):
        sample = sampler.sample(i)
        assert sample['negative'] == 0
        x1, y1, x2, y2 = sample['search_box']
        inside = sample['search'][int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
        assert inside.mean() > 150      # the white target (plus the colour offset)


def test_sampler_rejects_datasets_without_usable_frames():
    empty = Sequence('bad', np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 4)))
    with pytest.raises(ValueError, match='no sequence with a usable frame.*bad'):
        PysotPairSampler([[empty]], [1.0], [5], _data_config(0.0), 127, 255, seed=0)
