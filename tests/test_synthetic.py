"""Tests of the embedded procedural tracking dataset (generator, TFDS builder, loader)."""
import numpy as np
import pytest

from tracking.data import synthetic
from tracking.data.sequence import Sequence
from tracking.data.synthetic import generate_sequence, load_synthetic, split_seeds


def _iou_xywh(a, b):
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def _success_auc(ious):
    """OPE success AUC: mean over thresholds 0, 0.05, ..., 1 of the fraction IoU > threshold."""
    return float(np.mean([(ious > t).mean() for t in np.linspace(0, 1, 21)]))


@pytest.fixture(scope='module')
def test_split_sample():
    """Twelve 60-frame sequences of the test split's seeds (160 x 160 px)."""
    return [generate_sequence(seed, 60) for seed in split_seeds('test', 12)]


def test_same_seed_gives_identical_sequences():
    a = generate_sequence(11, 12, (96, 96))
    b = generate_sequence(11, 12, (96, 96))
    c = generate_sequence(12, 12, (96, 96))
    assert a['frames'].shape == (12, 96, 96, 3) and a['frames'].dtype == np.uint8
    assert a['boxes'].shape == (12, 4) and a['boxes'].dtype == np.float32
    assert a['visible'].shape == (12,) and a['visible'].dtype == bool
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a['frames'], c['frames'])


def test_splits_have_disjoint_seeds():
    train, val, test = (set(split_seeds(s, 100_000)) for s in ('train', 'val', 'test'))
    assert not (train & val) and not (train & test) and not (val & test)
    with pytest.raises(ValueError, match='unknown split'):
        split_seeds('dev', 3)


def test_boxes_inside_frame_and_visibility_rule(test_split_sample):
    for data in test_split_sample:
        boxes = data['boxes']
        height, width = data['frames'].shape[1:3]
        assert np.all(boxes[:, :2] >= 0)
        assert np.all(boxes[:, 0] + boxes[:, 2] <= width)
        assert np.all(boxes[:, 1] + boxes[:, 3] <= height)
        assert np.all(boxes[:, 2:] >= synthetic.INSIDE_MARGIN)
        np.testing.assert_array_equal(
            data['visible'], data['visible_fraction'] >= synthetic.MIN_VISIBLE_FRACTION)
        # Frame 0 has the whole target inside the frame (only an occluder can hide part of
        # it), so its visible fraction is exactly what the occluders leave.
        np.testing.assert_allclose(data['visible_fraction'][0],
                                   1 - data['occluded_fraction'][0], rtol=0, atol=1e-6)


def test_sample_has_invisible_and_partly_occluded_frames(test_split_sample):
    invisible = sum(int((~d['visible']).sum()) for d in test_split_sample)
    occluded = sum(int(((d['occluded_fraction'] > 0.3) & d['visible']).sum())
                   for d in test_split_sample)
    assert invisible > 0
    assert occluded > 0


def test_static_box_success_is_low(test_split_sample):
    aucs = []
    for data in test_split_sample:
        boxes, visible = data['boxes'], data['visible']
        ious = _iou_xywh(np.repeat(boxes[:1], len(boxes), 0), boxes)[1:][visible[1:]]
        aucs.append(_success_auc(ious))
    assert np.mean(aucs) < 0.3, aucs


def test_tfds_small_builds_and_loads(tmp_path):
    sequences = load_synthetic('test', data_dir=str(tmp_path), config='small')
    assert [s.name for s in sequences] == ['synthetic_test_0000', 'synthetic_test_0001']
    config = synthetic.SyntheticTracking.builder_configs['small']
    for index, sequence in enumerate(sequences):
        assert isinstance(sequence, Sequence)
        seed = split_seeds('test', 2)[index]
        num_frames = synthetic.sequence_length(seed, *config.frame_range)
        expected = generate_sequence(seed, num_frames, config.frame_size)
        assert sequence.frames.shape == (num_frames, 96, 96, 3)
        assert sequence.frames.dtype == np.uint8
        np.testing.assert_array_equal(sequence.boxes, expected['boxes'])
        np.testing.assert_array_equal(sequence.visible, expected['visible'])
        # JPEG (quality 90, 4:2:0 chroma) round trip: the luma is close to the rendered frames.
        luma = np.array([0.299, 0.587, 0.114])
        diff = np.abs(sequence.frames @ luma - expected['frames'] @ luma)
        assert diff.mean() < 4.0
        assert sequence.frame(0).shape == (96, 96, 3)
    train = load_synthetic('train', data_dir=str(tmp_path), num_sequences=3, config='small')
    assert [s.name for s in train] == [f'synthetic_train_{i:04d}' for i in range(3)]
    assert not {s.extra['seed'] for s in train} & {s.extra['seed'] for s in sequences}


def test_load_synthetic_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match='unknown split'):
        load_synthetic('train[:2]', data_dir=str(tmp_path), config='small')
