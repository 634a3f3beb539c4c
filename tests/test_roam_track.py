"""ROAM's online tracker against the official one: track.npz and forward.npz's track_G/track_R
of /work/shared/reference/roam_vgg16 (tyyyang/ROAM `Tracker.initialize` + `Tracker.track`,
float32 on CPU, sequence vot/bag frames 0..39).

The weights are the bundle's rebuilt state_dict through `roam.convert.from_official`; the video
runs as jit(init) then jit(step) frame by frame over `roam.tracker_fns` (each compiled once per
module; `track_video` is the same body in one lax.scan, held to separate runs by
tests/test_roam_tracker.py), and the first-frame test reuses that init. Tolerances are the
bundle's: boxes within 0.01 px on every frame; forward.npz arrays within 1e-4 x max(1, max |ref|).
Cost on CPU: 9 + 39 VGG-16 crops (about 1-2 s each on 2 free cores) plus 7 updates; see
docs/roam.md for the measured time.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs.roam import get_config
from helpers import REFERENCE, SEQUENCES, reference_state_dict
from roam import model as rm
from roam.convert import from_official, theta_to_flat
from roam.functional import tracker_fns

BUNDLE = REFERENCE / 'roam_vgg16'
BAG = SEQUENCES / 'vot' / 'bag'
NUM_FRAMES = 40


def _frames():
    return np.stack([np.asarray(Image.open(BAG / f'{i:08d}.jpg').convert('RGB'))
                     for i in range(1, NUM_FRAMES + 1)])


@pytest.fixture(scope='module')
def bundle(require_shared):
    require_shared(BUNDLE, BAG, what='ROAM reference bundle and the vot/bag sequence')
    config = get_config('vgg16')
    variables = from_official(reference_state_dict(BUNDLE), config)
    return dict(config=config, variables=variables, frames=_frames(),
                track=dict(np.load(BUNDLE / 'track.npz')),
                fwd=dict(np.load(BUNDLE / 'forward.npz')))


@pytest.fixture(scope='module')
def tracked(bundle):
    """The tracker from the float32 init box (what track_video takes): jit(fns.init) on frame 0,
    then jit(fns.step) on frames 1..39, i.e. track_video's scan body frame by frame (the scan
    itself equals these separate runs: tests/test_roam_tracker.py). Returns state0 (shared with
    the first-frame test, so the nine-sample init runs once), boxes [40, 4] and scores [40] as
    track_video gives them (row 0 the given box, score 1), as a dict."""
    fns = tracker_fns(bundle['config'])
    variables, frames = bundle['variables'], bundle['frames']
    hw = np.asarray(frames.shape[1:3], np.int32)
    box0 = bundle['track']['init_box'].astype(np.float32)
    init, step = jax.jit(fns.init), jax.jit(fns.step)
    state0 = init(variables, frames[0], hw, box0)
    state, boxes, scores = state0, [box0], [1.0]
    for frame in frames[1:]:
        state, out = step(variables, state, frame, hw)
        boxes.append(np.asarray(out['box'], np.float32))
        scores.append(np.float32(out['score']))
    return dict(boxes=np.asarray(boxes, np.float64), scores=np.asarray(scores, np.float64),
                state0=jax.device_get(state0))


def test_track_boxes_within_001_px(bundle, tracked):
    """Every frame's box (x, y, w, h) within 0.01 px of the official tracker's, and the chosen
    score of every tracked frame within 1e-4 x max(1, max |ref|) (row 0 of track_video is the
    given box with score 1; the official row 0 is ref_score, checked in the init test)."""
    boxes, scores = tracked['boxes'], tracked['scores']
    ref = bundle['track']
    diff = np.abs(boxes - ref['boxes']).max(axis=1)
    print(f'\nmax box diff {diff.max():.2e} px (frame {int(diff.argmax())}); per frame: '
          + ' '.join(f'{d:.0e}' for d in diff))
    assert diff.max() <= 0.01, (int(diff.argmax()), float(diff.max()))
    score_diff = np.abs(scores[1:] - ref['best_scores'][1:]).max()
    print(f'max score diff {score_diff:.2e}')
    assert score_diff <= 1e-4 * max(1.0, np.abs(ref['best_scores']).max())


def test_first_frame_step_and_track_maps(bundle, tracked):
    """After init (one step with lambda0 on the nine augmented samples): the filter size,
    ref_score (best_scores[0]), theta1 on the bundle's idx and its norm, and the tracker's own
    localize output on the frame-1 crop (forward.npz x -> our VGG -> G, R with theta1):
    track_G / track_R within 1e-4 x max(1, max |ref|)."""
    config, variables = bundle['config'], bundle['variables']
    ref, fwd = bundle['track'], bundle['fwd']
    state = tracked['state0']
    np.testing.assert_array_equal(np.asarray(state['filter_size']), ref['init_filter_size'])
    assert abs(float(state['ref_score']) - ref['best_scores'][0]) <= 1e-4
    flat = np.asarray(theta_to_flat(state['theta']))
    bound = 1e-4 * max(1.0, np.abs(ref['theta1_idx']).max())
    np.testing.assert_allclose(flat[ref['idx']], ref['theta1_idx'], rtol=0, atol=bound)
    assert abs(np.linalg.norm(flat) - float(ref['theta1_norm'])) <= 1e-4 * float(ref['theta1_norm'])
    from roam.vgg import vgg_features
    x = jnp.asarray(np.transpose(fwd['x'], (0, 2, 3, 1)))
    g, r = jax.jit(lambda th, x, fs: rm.apply_model(
        th, vgg_features(variables['vgg'], x), fs, config))(state['theta'], x,
                                                            state['filter_size'])
    for name, value, want in (('track_G', np.asarray(g)[:, None, None], fwd['track_G']),
                              ('track_R', np.asarray(r)[None], fwd['track_R'])):
        diff = float(np.abs(value - want).max())
        print(f'{name} {diff:.2e}')
        assert diff <= 1e-4 * max(1.0, float(np.abs(want).max())), name
