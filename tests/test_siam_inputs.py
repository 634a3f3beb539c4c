"""SiamRPNTracker on bad input: boxes outside the frame, zero width, grey and tiny frames."""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@pytest.fixture(scope='module')
def tracker():
    from siam.model import init_variables
    from siam.tracker import SiamRPNTracker
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/siamrpn.py:tiny'))
    return SiamRPNTracker(config, init_variables(config.model, jax.random.PRNGKey(0)))


def _frame(h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _track_two(tracker, frame, box):
    tracker.initialize(frame, box)
    boxes = [tracker.track(frame) for _ in range(2)]
    for b in boxes:
        assert b.shape == (4,) and np.all(np.isfinite(b)), b
        assert b[2] > 0 and b[3] > 0
    assert np.isfinite(tracker.best_score)
    return boxes


def test_box_partly_outside_the_frame(tracker):
    _track_two(tracker, _frame(), np.array([-30.0, 100.0, 60.0, 50.0]))   # left and bottom


def test_box_wholly_outside_the_frame_is_refused(tracker):
    with pytest.raises(ValueError, match='entirely outside the 160x120 frame'):
        tracker.initialize(_frame(), np.array([200.0, 10.0, 30.0, 30.0]))
    with pytest.raises(ValueError, match='entirely outside'):
        tracker.initialize(_frame(), np.array([-50.0, -40.0, 50.0, 40.0]))


@pytest.mark.parametrize('box', [[10, 10, 0, 20], [10, 10, 20, -1], [10, np.nan, 5, 5]])
def test_degenerate_box_is_refused_with_the_reason(tracker, box):
    with pytest.raises(ValueError, match='SiamRPNTracker.initialize: box'):
        tracker.initialize(_frame(), np.array(box, np.float64))


def test_grey_frames(tracker):
    grey = _frame()[..., 0]
    a = _track_two(tracker, grey, np.array([50.0, 40.0, 30.0, 20.0]))
    b = _track_two(tracker, grey[..., None], np.array([50.0, 40.0, 30.0, 20.0]))
    rgb = _track_two(tracker, np.repeat(grey[..., None], 3, axis=2),
                     np.array([50.0, 40.0, 30.0, 20.0]))
    np.testing.assert_array_equal(a, rgb)
    np.testing.assert_array_equal(b, rgb)


@pytest.mark.parametrize('size', [(1, 1), (4, 6)])
def test_tiny_frames_and_boxes(tracker, size):
    h, w = size
    _track_two(tracker, _frame(h, w), np.array([0.0, 0.0, w, h]))
    _track_two(tracker, _frame(), np.array([20.0, 30.0, 0.2, 0.3]))  # sub-pixel target


@pytest.mark.parametrize('frame', [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8),
                                   np.zeros((0, 10, 3), np.uint8)])
def test_unusable_frames_are_refused(tracker, frame):
    with pytest.raises(ValueError, match=r'frame must be \[H, W, 3\]'):
        tracker.initialize(frame, np.array([0.0, 0.0, 5.0, 5.0]))
