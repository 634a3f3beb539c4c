"""Numerical parity with the official GRM (ViT-B-256) on the shared reference bundle.

The official state_dict is rebuilt from manifest.tsv + params_1d.npz + the bundle's fill rule,
converted with grm_jax.convert.from_official, and run through one jitted forward (shared with
the tracker, so ViT-B compiles once). Tolerances: /work/shared/reference/README.md.
"""

import jax
import numpy as np
import pytest

from configs.grm import get_config
from grm_jax import convert, tracker
from tracking.images import load_image

from helpers import SHARED, reference_state_dict

BUNDLE = SHARED / 'reference' / 'grm_vitb_256'
FRAMES = SHARED / 'data' / 'sequences' / 'vot' / 'bag'
NUM_FRAMES = 40

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


@pytest.mark.parametrize('threshold, key', [(0.0, 'boxes_argmax'), (0.4, 'boxes_thr04')])
def test_track_40_frames(official, forward, frames, threshold, key):
    config, _, variables = official
    ref = np.load(BUNDLE / 'track.npz')
    grm = tracker.GRMTracker(config, variables, threshold=threshold)
    grm.initialize(frames[0], ref['init_box'])
    boxes = [ref['init_box']] + [grm.track(frame) for frame in frames[1:]]
    deviation = np.abs(np.array(boxes) - ref[key]).max(axis=1)
    worst = int(np.argmax(deviation))
    print(f'parity {key}: worst frame {worst}, {deviation[worst]:.2g} px')  # with -s
    assert deviation.max() <= 0.01, f'{key}: frame {worst} off by {deviation[worst]:.4g} px'
    assert tracker.make_forward(config).jitted._cache_size() == 1     # compiled once
