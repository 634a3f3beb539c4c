"""grm_jax.tracker_fns: GRM's tracking step as pure functions under jit, scan, vmap and grad.

Tiny config, random initial weights, small random frames, a few frames per video: every test
runs in seconds. Parity with the official tracker (ViT-B, 40 frames of `bag`, both thresholds)
runs through the same functions in tests/test_grm_parity.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grm_jax
from configs.grm import get_config
from grm_jax import functional, tracker
from grm_jax.model import init_variables
from tracking.api import TrackerFns, track_video
from tracking.crops import normalize_imagenet, sample_target

HP, WP = 72, 96                 # padded frame size of these tests
T = 4                           # frames per video


@pytest.fixture(scope='module')
def tiny():
    config = get_config('tiny')
    variables = jax.device_put(init_variables(config, jax.random.PRNGKey(0)))
    return config, variables


def _track(config):
    """track_video of GRM with the threshold as an argument (traced under jit)."""
    def go(variables, frames, frame_hw, box0, threshold):
        return track_video(grm_jax.tracker_fns(config, threshold), variables, frames, frame_hw,
                           box0)
    return go


@pytest.fixture(scope='module')
def run(tiny):
    """jit(track_video): one compilation per frame shape, whatever the threshold."""
    return jax.jit(_track(tiny[0]))


def _video(seed, hw=(HP, WP)):
    """T random frames of real size hw (padded with noise to HP x WP), and a frame-0 box."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (T, HP, WP, 3), dtype=np.uint8)
    h, w = hw
    box = np.array([rng.uniform(5, w - 30), rng.uniform(5, h - 25), rng.uniform(12, 24),
                    rng.uniform(10, 20)], np.float32)
    return frames, np.array(hw, np.int32), box


def test_tracker_fns_is_exported_and_returns_trackerfns(tiny):
    config, _ = tiny
    fns = grm_jax.tracker_fns(config, 0.4)
    assert isinstance(fns, TrackerFns)
    state = jax.eval_shape(fns.init, None, jax.ShapeDtypeStruct((HP, WP, 3), jnp.uint8),
                           jnp.array([HP, WP], jnp.int32), jnp.zeros(4, jnp.float32))
    m = config.model
    assert state['template'].shape == (m.template_size, m.template_size, 3)
    assert state['box'].shape == (4,) and state['box'].dtype == jnp.float32


def test_step_matches_host_procedure(tiny):
    """One step by hand on the host (cv2 crop, jitted network, float64 map back and clip, as the
    official tracker) equals the functional step."""
    config, variables = tiny
    m = config.model
    frames, hw, box = _video(1, hw=(60, 80))
    frame0, frame1 = frames[0, :60, :80], frames[1, :60, :80]
    init, step = tracker.jitted_fns(config)        # jitted tracker_fns(config) init and step
    state = init(variables, frames[0], hw, box, 0.4)
    state, out = step(variables, state, frames[1], hw)

    template = normalize_imagenet(sample_target(frame0, box, m.template_factor,
                                                m.template_size)[0])
    np.testing.assert_array_equal(state['template'], template)
    crop, resize_factor, _ = sample_target(frame1, box, m.search_factor, m.search_size)
    net = tracker.make_forward(config)(variables, template[None], normalize_imagenet(crop)[None],
                                       0.4)
    cx, cy, w, h = (np.asarray(net['window_boxes'][0]) * np.float32(m.search_size)
                    / np.float32(resize_factor)).astype(np.float64)
    x0, y0, w0, h0 = box.astype(np.float64)
    half = 0.5 * m.search_size / resize_factor
    x = cx + (x0 + 0.5 * w0 - half) - 0.5 * w
    y = cy + (y0 + 0.5 * h0 - half) - 0.5 * h
    x1, y1 = min(max(x, 0), 80 - 10), min(max(y, 0), 60 - 10)
    x2, y2 = min(max(x + w, 10), 80), min(max(y + h, 10), 60)
    expected = [x1, y1, max(10, x2 - x1), max(10, y2 - y1)]
    np.testing.assert_allclose(out['box'], expected, atol=1e-4)
    np.testing.assert_allclose(out['score'], net['window_score'][0], rtol=1e-6)
    np.testing.assert_allclose(out['score'], np.max(net['score_map'][0]
                                                    * functional.hann2d(m.search_size // 16)),
                               rtol=1e-6)


def test_class_is_an_adapter_over_the_step(tiny, run):
    """GRMTracker.initialize/track give the boxes of jit(track_video) on the same frames."""
    config, variables = tiny
    frames, hw, box = _video(2)
    boxes, _ = run(variables, frames, hw, box, 0.4)
    grm = tracker.GRMTracker(config, variables, threshold=0.4)
    grm.initialize(frames[0], box)
    tracked = [grm.track(frame) for frame in frames[1:]]
    assert tracked[0].dtype == np.float64
    np.testing.assert_array_equal(np.array(tracked), boxes[1:])
    np.testing.assert_array_equal(grm.state['box'], np.float32(tracked[-1]))


def test_vmap_over_8_sequences_equals_8_runs(tiny, run):
    config, variables = tiny
    sizes = [(HP, WP), (50, 70), (72, 40), (33, 96), (64, 64), (45, 51), (70, 90), (40, 60)]
    videos = [_video(10 + i, hw) for i, hw in enumerate(sizes)]
    frames, hws, boxes0 = (np.stack(parts) for parts in zip(*videos))
    many = jax.jit(jax.vmap(_track(config), in_axes=(None, 0, 0, 0, None)))
    batched, batched_scores = many(variables, frames, hws, boxes0, 0.0)
    assert batched.shape == (8, T, 4) and batched_scores.shape == (8, T)
    for i in range(8):
        alone, scores = run(variables, frames[i], hws[i], boxes0[i], 0.0)
        # Batched matmuls round differently: measured up to 1.5e-5 px.
        np.testing.assert_allclose(batched[i], alone, atol=1e-4, err_msg=f'sequence {i}')
        np.testing.assert_allclose(batched_scores[i], scores, atol=1e-5, err_msg=f'sequence {i}')
    # The sequences do differ (a vmap that broadcast one of them would fail above).
    assert len({tuple(np.round(b[-1], 2)) for b in np.asarray(batched)}) == 8


def test_padding_invariance(tiny, run):
    """The same video unpadded and padded (bright noise in the padding) tracks identically; the
    target sits at the bottom-right corner, so the crops reach the padding and the margin clip
    must use the real frame size."""
    config, variables = tiny
    h, w = 40, 56
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, (T, h, w, 3), dtype=np.uint8)
    padded = np.full((T, HP, WP, 3), 255, np.uint8)
    padded[:, :h, :w] = real
    box = np.array([w - 20, h - 16, 18, 15], np.float32)
    a, sa = run(variables, real, np.array([h, w], np.int32), box, 0.0)
    b, sb = run(variables, padded, np.array([h, w], np.int32), box, 0.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    assert np.all(a[:, 0] <= w - 10) and np.all(a[:, 0] + a[:, 2] <= w + 1e-3)
    assert np.all(a[:, 1] + a[:, 3] <= h + 1e-3)
    # Told the padded size instead, the tracker sees the padding: it must not match.
    c, _ = run(variables, padded, np.array([HP, WP], np.int32), box, 0.0)
    assert np.abs(np.asarray(c) - np.asarray(a)).max() > 0.1


def test_grad_of_box_loss_wrt_params_is_finite_and_nonzero(tiny):
    """Differentiating through a 4-frame track_video (crop positions held by stop_gradient in
    grm_jax.functional._search_crop)."""
    config, variables = tiny
    frames, hw, box = _video(4, hw=(60, 80))
    fns = grm_jax.tracker_fns(config)
    target = jnp.asarray(box)

    def loss(params):
        boxes, _ = track_video(fns, dict(variables, params=params), frames, hw, box)
        return jnp.sum((boxes[1:] - target) ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, grads = value_and_grad(variables['params'])
    leaves = jax.tree_util.tree_leaves(grads)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in leaves)
    norm = lambda tree: float(sum(np.sum(np.square(g)) for g in jax.tree_util.tree_leaves(tree)))
    assert norm(grads['box_head']) > 0
    assert norm(grads['backbone']['blocks_0']) > 0
    # A finite-difference check along the gradient of one head bias.
    key = ('box_head', 'conv5_offset', 'bias')
    g = grads[key[0]][key[1]][key[2]]
    eps = 1e-3
    bumped = variables['params']
    bumped = {**bumped, 'box_head': {**bumped['box_head'], 'conv5_offset': {
        **bumped['box_head']['conv5_offset'], 'bias': bumped['box_head']['conv5_offset']['bias']
        + eps * g / np.linalg.norm(g)}}}
    slope = (value_and_grad(bumped)[0] - value) / eps
    np.testing.assert_allclose(slope, np.linalg.norm(g), rtol=0.05)
