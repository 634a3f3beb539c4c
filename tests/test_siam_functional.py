"""siam.tracker_fns: SiamRPN++ as pure functions (jit / scan / vmap, padding, float64 state).

The 40-frame parity run against pysot goes through `jax.jit(track_video)` in
tests/test_siam_parity.py::test_track_parity; here the tiny config with random weights (outputs
scaled so that anchors decode to finite boxes and the target moves) keeps every test to seconds.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.siamrpn import get_config
from siam import tracker_fns
from siam.functional import channel_average, crop, first_argmax, state_scope
from siam.model import init_variables
from siam.tracker import SiamRPNTracker
from tracking.api import track_video
from tracking.subwindow import get_subwindow

from helpers import drifting_rectangle_video, tame_rpn_heads

H, W = 72, 96          # real frame size of the test videos
T = 4                  # frames per video


@pytest.fixture(scope='module')
def setup():
    config = get_config('tiny')
    variables = init_variables(config.model, jax.random.PRNGKey(0))
    variables = dict(variables, params=tame_rpn_heads(variables['params']))
    # The adapter and the functional tests share one TrackerFns, so its jitted init/step
    # compile once for the module.
    tracker = SiamRPNTracker(config, jax.tree_util.tree_map(np.asarray, variables))
    return dict(config=config, variables=tracker.variables, fns=tracker.fns, tracker=tracker,
                run=jax.jit(track_video, static_argnums=0))


def _video(seed, h=H, w=W, frames=T):
    """A textured background with a bright 20x16 rectangle drifting right/down; returns
    (frames [T, h, w, 3] uint8, box0 [4] float32)."""
    return drifting_rectangle_video(seed, (h, w), frames, origin=(20 + 5 * seed, 15 + 3 * seed),
                                    velocity=(3, 2), size=(20, 16))


def _pad(video, hp, wp, seed=0):
    """video [T, h, w, 3] padded bottom/right to [T, hp, wp, 3] with random junk."""
    t, h, w, _ = video.shape
    out = np.random.default_rng(100 + seed).integers(0, 256, (t, hp, wp, 3), dtype=np.uint8)
    out[:, :h, :w] = video
    return out


def test_track_video_equals_the_adapter(setup):
    """SiamRPNTracker is the same step: its boxes and scores equal jit(track_video)'s, and the
    tracker moves (the scores are live, boxes change)."""
    video, box0 = _video(0)
    boxes, scores = setup['run'](setup['fns'], setup['variables'], video, (H, W), box0)
    tracker = setup['tracker']
    tracker.initialize(video[0], box0)
    for t in range(1, T):
        box = tracker.track(video[t])
        assert box.dtype == np.float64
        np.testing.assert_allclose(box, boxes[t], atol=1e-4)       # float32 out['box']
        np.testing.assert_allclose(tracker.best_score, scores[t], rtol=1e-6)
    assert np.all(scores[1:] > 0) and np.all(scores[1:] < 1)
    assert np.abs(np.diff(np.asarray(boxes), axis=0)).max() > 0.1


def test_vmap_equals_separate_runs(setup):
    """jax.vmap(track_video) over 3 videos of different real sizes, padded to one shape, gives
    each video's separate run (up to float32 reordering inside the batched convolutions)."""
    sizes = [(H, W), (H - 8, W - 20), (H - 20, W - 4)]
    videos, boxes0 = zip(*[_video(i, h, w) for i, (h, w) in enumerate(sizes)])
    padded = np.stack([_pad(v, H, W, i) for i, v in enumerate(videos)])
    hws = np.array(sizes, np.int32)
    fns, variables = setup['fns'], setup['variables']
    batched = jax.jit(jax.vmap(functools.partial(track_video, fns, variables)))
    boxes, scores = batched(padded, hws, np.stack(boxes0))
    for i in range(len(sizes)):
        one_boxes, one_scores = setup['run'](fns, variables, padded[i], hws[i], boxes0[i])
        np.testing.assert_allclose(boxes[i], one_boxes, atol=1e-3, err_msg=f'video {i}')
        np.testing.assert_allclose(scores[i], one_scores, atol=1e-5, err_msg=f'video {i}')


def test_padding_invariance(setup):
    """The same video padded (with random junk) to a larger static size gives the same boxes
    and scores: crops, channel average and clip read only the real frame. The target starts
    near the bottom-right corner so the crops reach into the padding."""
    video, _ = _video(0)
    box0 = np.array([W - 30, H - 25, 20, 16], np.float32)
    plain = setup['run'](setup['fns'], setup['variables'], video, (H, W), box0)
    padded = setup['run'](setup['fns'], setup['variables'], _pad(video, H + 24, W + 40),
                          (H, W), box0)
    np.testing.assert_array_equal(plain[0], padded[0])
    np.testing.assert_array_equal(plain[1], padded[1])
    assert np.all(plain[0][1:, 0] + plain[0][1:, 2] / 2 <= W)          # clipped to the real W


def test_state_is_float64_and_replaceable(setup):
    """The state's centre/size are float64 (pysot's dtype) under the default; a caller can
    replace them between frames and the next crop is taken there."""
    video, box0 = _video(1)
    tracker, variables = setup['tracker'], setup['variables']
    step = tracker._step                                   # jax.jit(fns.step), compiled once
    tracker.initialize(video[0], box0)
    state = tracker.state
    assert state['center'].dtype == jnp.float64 and state['size'].dtype == jnp.float64
    assert state['channel_average'].dtype == jnp.uint8
    np.testing.assert_array_equal(state['center'], box0[:2] + (box0[2:] - 1) / 2)
    state, out = step(variables, state, video[1], np.array([H, W], np.int32))
    assert state['center'].dtype == jnp.float64 and out['box'].dtype == jnp.float32
    with state_scope(True):
        moved = dict(state, center=jnp.asarray([60.25, 50.5], jnp.float64))
    hw = np.array([H, W], np.int32)
    _, out_moved = step(variables, moved, video[2], hw)
    _, out_kept = step(variables, state, video[2], hw)
    assert np.abs(np.asarray(out_moved['box'][:2]) - np.asarray(out_kept['box'][:2])).max() > 5


def test_crop_origin_is_computed_in_float64():
    """A float64 centre 1e-9 px below a crop-origin step (which float32 would round onto the
    step) gives pysot's crop byte for byte: crop() computes the origin in the state dtype."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    average = np.array([17, 99, 201], np.uint8)
    side, out = 13, 9
    for cx, cy in [(20.5 - 1e-9, 11.5 - 1e-9), (20.5, 11.5), (-3.5 - 1e-9, 44.5 - 1e-9)]:
        expected = get_subwindow(frame, (cx, cy), out, side, average)
        with state_scope(True):
            center = jnp.asarray([cx, cy], jnp.float64)
            got = jax.jit(lambda f, c: crop(f, jnp.array([40, 50]), c, jnp.int32(side), out,
                                            average))(frame, center)
        np.testing.assert_array_equal(np.asarray(got), expected, err_msg=f'centre {cx, cy}')
    assert np.float32(20.5 - 1e-9) == np.float32(20.5)       # float32 would have moved it


def test_channel_average_is_numpys_truncated_mean_of_the_real_region():
    rng = np.random.default_rng(4)
    padded = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    for h, w in [(30, 41), (17, 23), (1, 1), (29, 2)]:
        expected = np.mean(padded[:h, :w], axis=(0, 1)).astype(np.uint8)
        got = jax.jit(channel_average)(padded, np.array([h, w], np.int32))
        np.testing.assert_array_equal(got, expected, err_msg=f'{h}x{w}')


def test_first_argmax_matches_numpy():
    values = np.array([0.5, 2.0, -np.inf, 2.0, 1.0])
    with state_scope(True):
        got = jax.jit(lambda v: first_argmax(v.astype(jnp.float64)))(values)
    assert int(got) == int(np.argmax(values)) == 1


def test_float32_state_has_no_float64(setup):
    """float64_state=False (devices without float64): the same functions with a float32 state;
    traced only (jax.eval_shape), nothing float64 anywhere in state or outputs."""
    fns = tracker_fns(setup['config'], float64_state=False)
    frame = jax.ShapeDtypeStruct((H, W, 3), jnp.uint8)
    hw = jax.ShapeDtypeStruct((2,), jnp.int32)
    state = jax.eval_shape(fns.init, setup['variables'], frame, hw,
                           jax.ShapeDtypeStruct((4,), jnp.float32))
    state, out = jax.eval_shape(fns.step, setup['variables'], state, frame, hw)
    assert state['center'].dtype == jnp.float32 and state['size'].dtype == jnp.float32
    assert jnp.float64 not in {leaf.dtype for leaf in jax.tree_util.tree_leaves((state, out))}
    assert out['box'].shape == (4,) and out['score'].shape == ()
