"""SiamAttn's tracker mechanics on the tiny config (random weights): the functional step under
jit / vmap / padding, the SiamAttnTracker adapter and its replaceable state, the host polygon on
hand-made masks, and the VOT reset protocol with polygons (sequential and batched) on the
shared bag sequence. Parity with the official tracker: tests/test_siamattn_track.py.

The tiny model still runs 255-pixel search crops, so each distinct program (the adapter's step,
the vmapped track_video, the batched step) compiles once for the module and is shared.
"""
from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.siamattn import get_config
from siam import tracker_fns
from siam.attn_functional import SiamAttnFns
from siam.functional import state_scope
from siam.polygon import back_affine, binary_mask_polygon, box_corners, mask_polygon
from siam.random_weights import random_variables
from siam.siamattn import variable_shapes
from siam.tracker import SiamAttnTracker
from tracking.api import track_video
from tracking.data.sequence import Sequence
from tracking.eval import batched
from tracking.eval.region import is_code
from tracking.eval.vot_protocol import run_supervised
from tracking.eval.vot_scoring import score_sequence

from helpers import SEQUENCES, drifting_rectangle_video

BAG = SEQUENCES / 'vot' / 'bag'
H, W = 360, 480            # bag's frame size: the adapter's step compiles once for both uses
T = 4


def _video(seed, frames=T):
    """A textured 360x480 background with a bright 70x50 rectangle drifting right/down;
    returns (frames [T, H, W, 3] uint8, box0 [4] float32)."""
    return drifting_rectangle_video(seed, (H, W), frames, origin=(150 + 20 * seed, 100 + 10 * seed),
                                    velocity=(4, 3), size=(70, 50))


@pytest.fixture(scope='module')
def setup():
    config = get_config('tiny')
    tracker = SiamAttnTracker(config, random_variables(variable_shapes(config.model)))
    return dict(config=config, tracker=tracker, fns=tracker.fns, variables=tracker.variables)


# --- the host polygon (no model) ----------------------------------------------------------------

def test_polygon_of_a_hand_made_mask():
    """A 64x64 mask, rows 16..47 x cols 8..55 on, mapped 2 px wide x 1 px tall per mask pixel
    onto a 320x240 frame: the polygon is that rectangle where the official affine puts it."""
    logits = np.full((64, 64), -8.0, np.float32)
    logits[16:48, 8:56] = 8.0
    mask_box, frame_wh = (100.0, 50.0, 128.0, 64.0), (320, 240)
    polygon = mask_polygon(logits, mask_box, frame_wh, (0, 0, 1, 1), 0.2)
    assert polygon.shape == (4, 2) and polygon.dtype == np.float32
    # The official map (frame = A mask): x = a u + c with a = (W - 1) / (W s_w), slightly < 2.
    affine = back_affine(mask_box, 64, frame_wh)
    assert affine[0, 0] == pytest.approx(319 / 160) and affine[1, 1] == pytest.approx(239 / 240)
    # Mask pixel edges (between u = 7 and 8, 55 and 56) in the frame; the contour runs through
    # the centres of the boundary pixels, so the rectangle lies within 1.5 px inside them.
    x0, x1 = affine[0, 0] * np.array([7.5, 55.5]) + affine[0, 2]
    y0, y1 = affine[1, 1] * np.array([15.5, 47.5]) + affine[1, 2]
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    assert x0 - 0.5 <= low[0] <= x0 + 1.5 and x1 - 1.5 <= high[0] <= x1 + 0.5, (low, high, x0, x1)
    assert y0 - 0.5 <= low[1] <= y0 + 1.5 and y1 - 1.5 <= high[1] <= y1 + 0.5, (low, high, y0, y1)
    # Axis-aligned: every corner on the rectangle's bounding box.
    assert np.all((np.isclose(polygon[:, 0], low[0]) | np.isclose(polygon[:, 0], high[0]))
                  & (np.isclose(polygon[:, 1], low[1]) | np.isclose(polygon[:, 1], high[1])))


def test_polygon_of_a_rotated_mask_and_the_fallbacks():
    """A drawn rectangle rotated by 30 degrees comes back as its corners (within 1.5 px, as a
    point set); an empty mask and a blob of area <= 100 give the fallback box's corners."""
    corners = cv2.boxPoints(((200.0, 120.0), (90.0, 40.0), 30.0))
    binary = np.zeros((240, 320), np.uint8)
    cv2.fillPoly(binary, [np.round(corners).astype(np.int32)], 1)
    polygon = binary_mask_polygon(binary, (0, 0, 1, 1))
    distance = np.linalg.norm(polygon[:, None] - corners[None], axis=-1).min(axis=1).max()
    assert distance <= 1.5, (polygon, corners)
    fallback = (10.5, 20.25, 30.0, 40.0)
    expected = np.array([[10.5, 20.25], [40.5, 20.25], [40.5, 60.25], [10.5, 60.25]], np.float32)
    np.testing.assert_array_equal(box_corners(fallback), expected)
    empty = np.full((64, 64), -5.0, np.float32)
    np.testing.assert_array_equal(
        mask_polygon(empty, (0, 0, 64, 64), (320, 240), fallback, 0.2), expected)
    small = np.zeros((240, 320), np.uint8)
    small[50:59, 50:59] = 1                     # contour area 8 x 8 = 64 <= 100
    np.testing.assert_array_equal(binary_mask_polygon(small, fallback), expected)
    small[50:62, 50:62] = 1                     # 11 x 11 = 121 > 100: its own rectangle
    assert not np.array_equal(binary_mask_polygon(small, fallback), expected)
    with pytest.raises(ValueError, match='mask box'):
        mask_polygon(empty, (0, 0, 0, 64), (320, 240), fallback)


# --- the functional step and the adapter ----------------------------------------------------------

def test_dispatch_and_out(setup):
    """siam.tracker_fns dispatches on model.arch; the out holds the mask and the RoIs."""
    fns = tracker_fns(setup['config'])
    assert isinstance(fns, SiamAttnFns)
    video, box0 = _video(0)
    tracker = setup['tracker']
    tracker.initialize(video[0], box0)
    box = tracker.track(video[1])
    out = tracker.out
    assert box.dtype == np.float64 and box.shape == (4,)
    side = 4 * setup['config'].model.refine.roi_pool_size      # 64 for r50_l234
    assert out['mask_logits'].shape == (side, side) and out['mask_box'].dtype == np.float64
    assert out['rpn_roi'].shape == (5,) and out['mask_roi'].dtype == np.float32
    assert tracker.polygon.shape == (4, 2) and tracker.polygon.dtype == np.float32
    assert 0 < tracker.best_score <= 1
    # The mask covers the new box: (s_x / 255) * (box size * scale_z), s_x = round(s_z * 255 / 127).
    np.testing.assert_allclose(out['mask_box'][2:], out['box_exact'][2:], rtol=0.01)


def test_vmapped_padded_track_video_equals_the_adapter(setup):
    """jit(vmap(track_video)) over two videos padded with junk to 384x512 (frame_hw the real
    360x480) gives the adapter's boxes and scores on each unpadded video: one program for
    jit, vmap, scan and padding; the boxes move."""
    videos, boxes0 = zip(*(_video(seed) for seed in (0, 1)))
    padded = np.random.default_rng(7).integers(0, 256, (2, T, 384, 512, 3), dtype=np.uint8)
    padded[:, :, :H, :W] = np.stack(videos)
    run = jax.jit(jax.vmap(track_video, in_axes=(None, None, 0, 0, 0)), static_argnums=0)
    boxes, scores = run(setup['fns'], setup['variables'], padded,
                        np.array([[H, W]] * 2, np.int32), np.stack(boxes0))
    tracker = setup['tracker']
    for v, video in enumerate(videos):
        tracker.initialize(video[0], boxes0[v])
        for t in range(1, T):
            box = tracker.track(video[t])
            np.testing.assert_allclose(box, boxes[v, t], atol=2e-3, err_msg=f'video {v} t {t}')
            np.testing.assert_allclose(tracker.best_score, scores[v, t], atol=1e-5)
    assert np.abs(np.diff(np.asarray(boxes), axis=1)).max() > 0.5


def test_state_is_replaceable(setup):
    """Teacher forcing through the adapter: after setting center / size, track() is the
    jitted step from exactly that state (float64 kept)."""
    video, box0 = _video(0)
    tracker = setup['tracker']
    tracker.initialize(video[0], box0)
    tracker.center = (201.25, 131.5)
    tracker.size = (66.0, 52.5)
    assert tracker.state['center'].dtype == jnp.float64
    state = dict(tracker.state)
    box = tracker.track(video[1])
    _, out = tracker._step(tracker.variables, state, video[1], np.array([H, W], np.int32))
    np.testing.assert_array_equal(box, np.asarray(out['box_exact']))
    with pytest.raises(ValueError, match='center must be 2 finite'):
        tracker.center = (np.nan, 1.0)


# --- VOT reset protocol with polygons on the shared bag -------------------------------------------

def _bag_with_a_jump(frames=24, jump=10):
    """bag's first `frames` frames; the ground truth of frame `jump` moved to the far corner, so
    frame `jump` is a failure whatever the tracker does, and frame jump + 5 re-initialises."""
    from tracking.data.benchmarks import load_benchmark
    seq = load_benchmark('vot', BAG)[0]
    polygons = np.asarray(seq.extra['polygons'], np.float64)[:frames].copy()
    polygons[jump] = [430, 320, 470, 320, 470, 350, 430, 350]
    boxes = seq.boxes[:frames].copy()
    return Sequence('bag', list(seq.frames[:frames]), boxes, extra={'polygons': polygons})


@pytest.mark.shared(BAG, what='VOT reset protocol with polygons on bag')
def test_vot_reset_with_polygons_sequential_and_batched(setup):
    seq = _bag_with_a_jump()
    tracker = setup['tracker']
    records, times = run_supervised(tracker, seq)
    codes = {i: r for i, r in enumerate(records) if is_code(r)}
    failed = [i for i, c in codes.items() if c == 2]
    assert codes[0] == 1 and failed, codes          # frame 10 fails unless skipped after a failure
    for f in failed:                                # reset: 4 skipped frames, then an init
        assert all(codes[i] == 0 for i in range(f + 1, min(f + 5, len(seq)))), codes
        assert f + 5 >= len(seq) or codes[f + 5] == 1, codes
    regions = [r for r in records if not is_code(r)]
    assert regions and all(np.shape(r) == (8,) for r in regions)   # polygons, not boxes
    score = score_sequence(records, seq.extra['polygons'], (W, H))
    assert score['failures'] == failed
    tracked = [i for i, r in enumerate(records) if not is_code(r)]
    assert np.all(score['eao_overlaps'][tracked] > 0)         # polygons scored, no burn-in

    finished = {}
    failures = batched.run_pending_batched(
        lambda: (setup['fns'], setup['variables']), [seq], lambda s: False,
        lambda s, r, t: finished.update({s.name: r}), 'vot', 'bag', False, batch_sequences=2)
    assert not failures
    records_b = finished['bag']
    assert len(records_b) == len(records)
    for i, (a, b) in enumerate(zip(records, records_b)):
        assert is_code(a) == is_code(b), i
        if is_code(a):
            assert a == b, i
        else:
            assert np.shape(b) == (8,), i
            distance = np.linalg.norm(a.reshape(4, 1, 2) - b.reshape(1, 4, 2), axis=-1)
            assert max(distance.min(0).max(), distance.min(1).max()) <= 1.0, (i, a, b)
