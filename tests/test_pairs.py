"""Tests of the training pair sampler and its tf.data pipeline."""
from pathlib import Path

import numpy as np
import pytest

from tracking.config import load_config
from tracking.data.pairs import (PairSampler, box_in_crop, search_window, train_batches,
                                 usable_frames)
from tracking.data.sequence import Sequence
from tracking.data.synthetic import generate_sequence

CONFIG_PATH = str(Path(__file__).resolve().parents[1] / 'configs' / 'grm.py')


@pytest.fixture(scope='module')
def config():
    return load_config(CONFIG_PATH + ':tiny', ['model.patch_size=8'])   # 16x16 heat maps


@pytest.fixture(scope='module')
def synthetic_sequences():
    sequences = []
    for seed in range(3):
        data = generate_sequence(seed, 22, (96, 96))
        sequences.append(Sequence(f'syn{seed}', data['frames'], data['boxes'], data['visible']))
    return sequences


def _white_box_sequence(num_frames=20, size=(100, 120)):
    """Black frames with a white rectangle moving right/down; boxes are exact."""
    height, width = size
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    boxes = []
    for t in range(num_frames):
        x, y, w, h = 20 + 2 * t, 30 + t, 24, 14
        frames[t, y:y + h, x:x + w] = 255
        boxes.append((x, y, w, h))
    return Sequence('white_box', frames, np.array(boxes, np.float32), np.ones(num_frames, bool))


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_batch_shapes_and_dtypes(config, synthetic_sequences):
    batch = next(train_batches([synthetic_sequences], [1.0], config.data, config.model,
                               global_batch=4, seed=0))
    assert batch['template'].shape == (4, 64, 64, 3) and batch['template'].dtype == np.uint8
    assert batch['search'].shape == (4, 128, 128, 3) and batch['search'].dtype == np.uint8
    assert batch['template_box'].shape == (4, 4) and batch['template_box'].dtype == np.float32
    assert batch['search_box'].shape == (4, 4) and batch['search_box'].dtype == np.float32
    assert batch['heatmap'].shape == (4, 16, 16) and batch['heatmap'].dtype == np.float32
    np.testing.assert_array_equal(batch['index'], np.arange(4))
    np.testing.assert_allclose(batch['heatmap'].max(axis=(1, 2)), 1.0)


def test_resumed_run_yields_the_same_batches(config, synthetic_sequences):
    args = ([synthetic_sequences], [1.0], config.data, config.model)
    full = _take(train_batches(*args, global_batch=4, seed=7), 4)
    resumed = next(train_batches(*args, global_batch=4, seed=7, start_step=3))
    for key in full[3]:
        np.testing.assert_array_equal(resumed[key], full[3][key], err_msg=key)
    np.testing.assert_array_equal(resumed['index'], np.arange(12, 16))
    other_seed = next(train_batches(*args, global_batch=4, seed=8, start_step=3))
    assert not np.array_equal(other_seed['search'], full[3]['search'])


def test_process_slices_concatenate_to_the_global_batch(config, synthetic_sequences):
    args = ([synthetic_sequences], [1.0], config.data, config.model)
    full = _take(train_batches(*args, global_batch=4, seed=3, start_step=1), 2)
    parts = [_take(train_batches(*args, global_batch=4, seed=3, start_step=1, process_index=p,
                                 process_count=2), 2) for p in range(2)]
    for step in range(2):
        for key in full[step]:
            joined = np.concatenate([parts[0][step][key], parts[1][step][key]])
            np.testing.assert_array_equal(joined, full[step][key], err_msg=key)
    with pytest.raises(ValueError, match='divisible'):
        train_batches(*args, global_batch=5, seed=3, process_count=2)


def test_box_in_crop_hand_computed():
    # box (30.3, 40.7, 20, 10), factor 4: crop_sz = ceil(sqrt(200) * 4) = 57,
    # x1 = round(40.3 - 28.5) = 12, y1 = round(45.7 - 28.5) = 17.
    box = np.array([30.3, 40.7, 20.0, 10.0])
    expected = np.array([(30.3 - 12) / 57, (40.7 - 17) / 57, 20 / 57, 10 / 57], np.float32)
    np.testing.assert_allclose(box_in_crop(box, box, 4.0), expected, rtol=1e-6)


def test_search_window_grows_by_five():
    # Next usable frame 290 frames after the template: g = 5 * ceil(91 / 5) = 95.
    np.testing.assert_array_equal(search_window(10, np.array([300, 304, 305]), 200), [300, 304])
    np.testing.assert_array_equal(search_window(10, np.array([15, 209, 210, 250]), 200),
                                  [15, 209])


def test_zero_jitter_box_is_centred_with_size_one_over_factor(config):
    data = config.data.copy_and_resolve_references()
    for key in ('search_center_jitter', 'search_scale_jitter', 'template_center_jitter',
                'template_scale_jitter', 'gray_prob', 'flip_prob', 'crop_flip_prob',
                'brightness_jitter'):
        data[key] = 0.0
    sampler = PairSampler([[_white_box_sequence()]], [1.0], data, config.model, seed=0)
    for k in range(8):
        sample = sampler.sample(k)
        for key, factor, crop_px in (('search_box', 4.0, 4 * np.sqrt(24 * 14)),
                                     ('template_box', 2.0, 2 * np.sqrt(24 * 14))):
            x, y, w, h = sample[key]
            crop_sz = np.ceil(crop_px)
            # Centre within half a source pixel (rounding of the crop origin) of 0.5.
            assert abs(x + w / 2 - 0.5) <= 0.5 / crop_sz + 1e-6
            assert abs(y + h / 2 - 0.5) <= 0.5 / crop_sz + 1e-6
            np.testing.assert_allclose(np.sqrt(w * h), np.sqrt(24 * 14) / crop_sz, rtol=1e-5)
            assert np.sqrt(w * h) <= 1 / factor
        # Heat-map peak at the cell of the box centre.
        x, y, w, h = sample['search_box'] * 16
        peak = np.unravel_index(np.argmax(sample['heatmap']), (16, 16))
        assert peak == (int(np.round(y + h / 2)), int(np.round(x + w / 2)))


def test_boxes_mark_the_object_in_the_crops(config):
    """With the tiny config's jitter, flips and brightness, the white object lies in the box."""
    data = config.data.copy_and_resolve_references()
    data.gray_prob = 0.5
    sampler = PairSampler([[_white_box_sequence()]], [1.0], data, config.model, seed=1)
    for k in range(24):
        sample = sampler.sample(k)
        for image_key, box_key in (('template', 'template_box'), ('search', 'search_box')):
            image = sample[image_key].astype(float).mean(-1)
            size = image.shape[0]
            x0, y0, w, h = sample[box_key] * size
            x1, y1 = x0 + w, y0 + h
            inner = image[int(np.ceil(y0 + 1)):int(y1 - 1), int(np.ceil(x0 + 1)):int(x1 - 1)]
            assert inner.size and inner.mean() > 150, (k, image_key)
            outside = np.ones_like(image, bool)
            outside[max(int(y0 - 2), 0):int(y1 + 3), max(int(x0 - 2), 0):int(x1 + 3)] = False
            assert image[outside].mean() < 10, (k, image_key)


def test_sequences_without_usable_frames_are_rejected(config):
    short = _white_box_sequence(num_frames=10)
    hidden = _white_box_sequence()
    hidden.visible[:] = False
    assert not usable_frames(hidden).any()
    with pytest.raises(ValueError, match='no usable sequence'):
        PairSampler([[short, hidden]], [1.0], config.data, config.model, seed=0)


def test_single_image_uses_the_same_frame(config):
    image = _white_box_sequence(num_frames=1)
    data = config.data.copy_and_resolve_references()
    data.search_center_jitter = 0.0
    data.search_scale_jitter = 0.0
    data.crop_flip_prob = 0.0
    data.flip_prob = 0.0
    sample = PairSampler([[image]], [1.0], data, config.model, seed=0).sample(0)
    assert abs(sample['search_box'][0] + sample['search_box'][2] / 2 - 0.5) < 0.02
