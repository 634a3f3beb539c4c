"""Numerical parity with the official GRM (ViT-B-256) on the shared reference bundle.

The official state_dict is rebuilt from manifest.tsv + params_1d.npz + the bundle's fill rule,
converted with grm_jax.convert.from_official, and run through the tracker's jitted network
forward; the 40-frame track runs the functional tracker (grm_jax.tracker_fns) as one
jax.jit(track_video) for both thresholds, the GRMTracker class on its first frames.
Tolerances: /work/shared/reference/README.md.
"""

import jax
import numpy as np
import pytest

import grm_jax
from configs.grm import get_config
from grm_jax import convert, tracker
from tracking.api import track_video
from tracking.images import load_image

from helpers import SHARED, reference_state_dict

BUNDLE = SHARED / 'reference' / 'grm_vitb_256'
FRAMES = SHARED / 'data' / 'sequences' / 'vot' / 'bag'
NUM_FRAMES = 40
CLASS_FRAMES = 4                 # the class path: frames 1..3

pytestmark = pytest.mark.shared(BUNDLE / 'manifest.tsv', what='GRM reference bundle')


@pytest.fixture(scope='module')
def official():
    config = get_config('vitb_256')
    state_dict = reference_state_dict(BUNDLE)
    variables = jax.device_put(convert.from_official(state_dict, config))
    return config, state_dict, variables


@pytest.fixture(scope='module')
def forward(official):
    config, _, variables = official
    ref = np.load(BUNDLE / 'forward.npz')
    template = ref['template'].transpose(0, 2, 3, 1)
    search = ref['search'].transpose(0, 2, 3, 1)
    run = tracker.make_forward(config.model)       # the tracker's jitted forward
    outputs = {t: jax.device_get(run(variables, template, search, t)) for t in (0.0, 0.4)}
    return ref, outputs


def _assert_close(name, port, ref):
    port = np.asarray(port, np.float32)
    assert port.shape == ref.shape, (name, port.shape, ref.shape)
    diff = np.abs(port - ref).max()
    tol = 1e-4 * max(1.0, np.abs(ref).max())
    print(f'parity {name}: max |port - ref| = {diff:.2g} (tolerance {tol:.2g})')  # with -s
    assert diff <= tol, f'{name}: max |port - ref| = {diff:.3g} > {tol:.3g}'


def test_layout_matches_official_keys(official):
    config, state_dict, _ = official
    expected = [k for k in state_dict if not k.endswith('num_batches_tracked')]
    assert list(convert.official_layout(config)) == expected
    assert len(state_dict) == 308


def test_round_trip_is_exact(official):
    config, state_dict, variables = official
    back = convert.to_official(jax.device_get(variables), config)
    for key, value in back.items():
        np.testing.assert_array_equal(value, state_dict[key], err_msg=key)


def test_forward_argmax(forward):
    ref, outputs = forward
    out = outputs[0.0]
    _assert_close('backbone_out', out['backbone_out'], ref['backbone_out'])
    _assert_close('score_map', out['score_map'][:, None], ref['score_map'])
    _assert_close('size_map', out['size_map'].transpose(0, 3, 1, 2), ref['size_map'])
    _assert_close('offset_map', out['offset_map'].transpose(0, 3, 1, 2), ref['offset_map'])
    _assert_close('pred_boxes', out['pred_boxes'][:, None], ref['pred_boxes'])
    _assert_close('division_logprobs', out['division_logprobs'], ref['division_logprobs'])
    np.testing.assert_array_equal(out['decisions'].astype(np.int8), ref['division_argmax'])
    np.testing.assert_allclose(out['decision_fraction'][0],
                               ref['division_argmax'][:, 0].mean(-1), rtol=1e-6)


def test_forward_threshold_04(forward):
    ref, outputs = forward
    out = outputs[0.4]
    _assert_close('score_map_thr04', out['score_map'][:, None], ref['score_map_thr04'])
    np.testing.assert_array_equal(out['decisions'].astype(np.int8), ref['division_thr04'])
    assert not np.array_equal(ref['division_thr04'], ref['division_argmax'])


@pytest.fixture(scope='module')
def frames(require_shared):
    require_shared(FRAMES, what='GRM 40-frame track on vot/bag')
    paths = sorted(FRAMES.glob('*.jpg'))[:NUM_FRAMES]
    assert len(paths) == NUM_FRAMES, f'{FRAMES} holds {len(paths)} JPEG frames, need {NUM_FRAMES}'
    return [load_image(p) for p in paths]


@pytest.fixture(scope='module')
def track(official):
    """jit(track_video) of grm_jax.tracker_fns with the threshold traced: one compilation."""
    config, _, _ = official

    def run(variables, frames, frame_hw, box0, threshold):
        return track_video(grm_jax.tracker_fns(config, threshold), variables, frames, frame_hw,
                           box0)
    return jax.jit(run)


@pytest.mark.parametrize('threshold, key', [(0.0, 'boxes_argmax'), (0.4, 'boxes_thr04')])
def test_track_40_frames(official, frames, track, threshold, key):
    """The functional tracker (device crops and post-processing, one lax.scan) on 40 frames."""
    _, _, variables = official
    ref = np.load(BUNDLE / 'track.npz')
    video = np.stack(frames)
    boxes, scores = track(variables, video, np.array(video.shape[1:3], np.int32),
                          ref['init_box'], threshold)
    deviation = np.abs(np.asarray(boxes, np.float64) - ref[key]).max(axis=1)
    worst = int(np.argmax(deviation))
    print(f'parity {key}: worst frame {worst}, {deviation[worst]:.2g} px')  # with -s
    assert deviation.max() <= 0.01, f'{key}: frame {worst} off by {deviation[worst]:.4g} px'
    assert np.all((scores > 0) & (scores <= 1))
    assert track._cache_size() == 1     # compiled once for both thresholds


def test_class_tracker_first_frames(official, frames):
    """GRMTracker (the adapter over the same step) on the first frames, threshold 0.4."""
    config, _, variables = official
    ref = np.load(BUNDLE / 'track.npz')
    grm = tracker.GRMTracker(config, variables, threshold=0.4)
    grm.initialize(frames[0], ref['init_box'])
    boxes = [grm.track(frame) for frame in frames[1:CLASS_FRAMES]]
    deviation = np.abs(np.array(boxes) - ref['boxes_thr04'][1:CLASS_FRAMES]).max()
    assert deviation <= 0.01, f'GRMTracker: off by {deviation:.4g} px'
