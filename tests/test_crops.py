"""Tests for tracking/crops.py: the official sample_target rules, crop_and_resize, normalisation."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tracking import crops

from helpers import SHARED
H, W = 100, 120


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, size=(H, W, 3), dtype=np.uint8)  # no zeros: padding is visible


def test_box_fully_inside(image):
    # crop_sz = ceil(sqrt(100) * 2) = 20; x1 = round(45 - 10) = 35; y1 = round(35 - 10) = 25.
    crop, factor, mask = crops.sample_target(image, (40.0, 30.0, 10.0, 10.0), 2.0, 20)
    assert crop.shape == (20, 20, 3) and crop.dtype == np.uint8 and factor == 1.0
    np.testing.assert_array_equal(crop, image[25:45, 35:55])
    assert mask.shape == (20, 20) and mask.dtype == bool and not mask.any()


def test_crop_size_is_ceiled(image):
    # sqrt(10 * 12) * 2 = 21.9 -> 22; resize_factor = 44 / 22.
    crop, factor, _ = crops.sample_target(image, (40.0, 30.0, 10.0, 12.0), 2.0, 44)
    assert crop.shape == (44, 44, 3) and factor == pytest.approx(2.0)


def test_box_crossing_left_top_edge(image):
    # crop_sz 20; x1 = round(7 - 10) = -3; y1 = round(8 - 10) = -2.
    crop, _, mask = crops.sample_target(image, (2.0, 3.0, 10.0, 10.0), 2.0, 20)
    assert not crop[:2].any() and not crop[:, :3].any()
    np.testing.assert_array_equal(crop[2:, 3:], image[0:18, 0:17])
    assert mask[:2].all() and mask[:, :3].all() and not mask[2:, 3:].any()


def test_box_touching_right_bottom_edge_plus_one_quirk(image):
    # crop_sz 20; x1 = round(110 - 10) = 100, x2 = 120 = W; y1 = 80, y2 = 100 = H.
    # Official padding is x2 - W + 1 = 1: the image's last column/row is replaced by black.
    crop, _, mask = crops.sample_target(image, (105.0, 85.0, 10.0, 10.0), 2.0, 20)
    assert not crop[:, 19].any() and not crop[19].any()
    np.testing.assert_array_equal(crop[:19, :19], image[80:99, 100:119])
    assert mask[:, 19].all() and mask[19].all() and not mask[:19, :19].any()
    # One pixel further in (x2 = W - 1) there is no padding at all.
    crop, _, mask = crops.sample_target(image, (104.0, 84.0, 10.0, 10.0), 2.0, 20)
    np.testing.assert_array_equal(crop, image[79:99, 99:119])
    assert not mask.any()


@pytest.mark.parametrize('x, expected_x1', [(7.5, 2), (8.5, 4), (7.6, 3)])
def test_round_half_to_even(image, x, expected_x1):
    # x + 5 - 10 = 2.5 -> 2 (half to even), 3.5 -> 4, 2.6 -> 3.
    crop, _, _ = crops.sample_target(image, (x, 30.0, 10.0, 10.0), 2.0, 20)
    np.testing.assert_array_equal(crop, image[25:45, expected_x1:expected_x1 + 20])


def test_downscaled_mask_is_official_bilinear_nonzero(image):
    # crop 20 -> 10 with 3 padded columns on the left: output column i samples 2i + 0.5, so
    # column 0 (taps 0, 1) and column 1 (taps 2, 3; tap 2 is padding) count as padding.
    _, factor, mask = crops.sample_target(image, (2.0, 40.0, 10.0, 10.0), 2.0, 10)
    assert factor == 0.5
    np.testing.assert_array_equal(mask.any(axis=0), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert mask[:, :2].all()


def test_window_outside_image_is_black(image):
    crop, _, mask = crops.sample_target(image, (-100.0, -100.0, 10.0, 10.0), 2.0, 16)
    assert not crop.any() and mask.all()


@pytest.mark.parametrize('box, factor', [
    ((1.0, 1.0, 0.0, 5.0), 2.0), ((1.0, 1.0, 5.0, -2.0), 2.0), ((np.nan, 1.0, 5.0, 5.0), 2.0),
    ((1.0, 1.0, 5.0, 5.0), 0.0)])
def test_degenerate_boxes_raise(image, box, factor):
    with pytest.raises(ValueError, match='sample_target'):
        crops.sample_target(image, box, factor, 16)


def test_real_frame_crossing(require_shared):
    path = SHARED / 'data/sequences/otb/Crossing/img/0001.jpg'
    require_shared(path, what='sample_target on a real frame')
    from tracking.images import load_image
    frame = load_image(path)
    # GT (205, 151, 17, 50): crop_sz = ceil(sqrt(850) * 4) = 117, x1 = round(155.0) = 155,
    # y1 = round(117.5) = 118 (half to even), window inside the 360 x 240 frame.
    crop, factor, mask = crops.sample_target(frame, (205, 151, 17, 50), 4.0, 256)
    assert crop.shape == (256, 256, 3) and factor == pytest.approx(256 / 117)
    expected = cv2.resize(frame[118:235, 155:272], (256, 256), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop, expected)
    assert not mask.any()


def test_crop_and_resize_matches_cv2_inside(image):
    # Window [30, 70) x [20, 60) (crop_sz 40, downscaled to 16): interior of the image.
    box = (45.0, 35.0, 10.0, 10.0)  # crop_sz 40, x1 = round(50 - 20) = 30, y1 = 20
    crop, _, _ = crops.sample_target(image, box, 4.0, 16)
    out = jax.jit(crops.crop_and_resize, static_argnums=2)(
        image[None], jnp.array([[30.0, 20.0, 70.0, 60.0]]), 16)
    assert out.shape == (1, 16, 16, 3) and out.dtype == jnp.float32
    assert np.max(np.abs(np.asarray(out[0]) - crop.astype(np.float32))) <= 1.0


def test_crop_and_resize_zero_padding_matches_cv2(image):
    # Window [-3, 17) x [-2, 18) crosses the left/top edge; zero padding on both sides.
    crop, _, _ = crops.sample_target(image, (2.0, 3.0, 10.0, 10.0), 2.0, 8)
    out = crops.crop_and_resize(image[None], jnp.array([[-3.0, -2.0, 17.0, 18.0]]), 8)
    assert np.max(np.abs(np.asarray(out[0]) - crop.astype(np.float32))) <= 1.0
    # Entirely outside: all zero. Mixed batch keeps per-image boxes.
    both = crops.crop_and_resize(np.stack([image, image]),
                                 jnp.array([[-50.0, -50.0, -10.0, -10.0], [0.0, 0.0, 4.0, 4.0]]), 4)
    assert not np.asarray(both[0]).any()
    np.testing.assert_allclose(both[1], image[:4, :4].astype(np.float32))


def test_crop_and_resize_half_pixel_rule():
    # A horizontal ramp image[y, x] = x; upscaling [2, 4) by 2 samples x = 2 + (i + .5)/2 - .5.
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None], (8, 1, 3))
    out = crops.crop_and_resize(ramp[None], jnp.array([[2.0, 2.0, 4.0, 4.0]]), 4)
    np.testing.assert_allclose(out[0, 0, :, 0], [1.75, 2.25, 2.75, 3.25], atol=1e-6)


def test_normalize_imagenet():
    pixel = np.array([[[255, 0, 128]]], np.uint8)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(crops.normalize_imagenet(pixel)[0, 0], expected, rtol=1e-6)
    out_jax = crops.normalize_imagenet(jnp.asarray(pixel))
    assert isinstance(out_jax, jax.Array) and out_jax.dtype == jnp.float32
    np.testing.assert_allclose(out_jax[0, 0], expected, rtol=1e-6)
    assert crops.normalize_imagenet(pixel.astype(np.float64)).dtype == np.float32
