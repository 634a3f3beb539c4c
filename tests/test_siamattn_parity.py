"""SiamAttn (siam/siamattn.py) against the official code's float32 forward pass.

The bundle /work/shared/reference/siamattn_r50_l234 holds what the official ModelBuilder computed
on the tracker's template and frame-1 search crops of vot/bag, for weights rebuilt from its
manifest. Here the same weights go through `siam.convert.from_official` (the real conversion path)
and every recorded array must lie within max|port - ref| <= 1e-4 x max(1, max|ref|) (the bundle
README's bound; float64 against the float32 reference is 2.5e-5 on every array).
The forward runs once per module (about a minute on two cores with compilation).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.siamattn import get_config
from siam.convert import from_official
from siam.deform import c_round
from siam.siamattn import build_model

from helpers import SHARED, reference_state_dict

BUNDLE = SHARED / 'reference' / 'siamattn_r50_l234'
LEVELS = 3


def _nchw(x):
    x = np.asarray(x)
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def _nhwc(x):
    return np.transpose(np.asarray(x), (0, 2, 3, 1))


@pytest.fixture(scope='module')
def reference(require_shared):
    require_shared(BUNDLE, what='SiamAttn reference bundle')
    config = get_config('r50_l234')
    state_dict = reference_state_dict(BUNDLE)
    variables = from_official(state_dict, config)
    ref = dict(np.load(BUNDLE / 'forward.npz'))
    model = build_model(config.model)

    @jax.jit
    def forward(variables, z, x, box_roi, mask_roi, ref_box_features, ref_mask_features):
        template = model.apply(variables, z, method='template_features')
        out, inter = model.apply(variables, x, template['neck'], method='track_forward',
                                 mutable=['intermediates'])
        box = model.apply(variables, out['box_features'], box_roi, method='refine_box')
        mask = model.apply(variables, out['mask_features'], mask_roi, method='refine_mask')
        # The heads again on the reference's own fused features: isolates them from upstream.
        box_ref = model.apply(variables, ref_box_features, box_roi, method='refine_box')
        mask_ref = model.apply(variables, ref_mask_features, mask_roi, method='refine_mask')
        offsets = jax.tree_util.tree_map(lambda v: v[0], inter['intermediates']['feature_enhance'])
        return template, out, offsets, box, mask, box_ref, mask_ref

    template, out, offsets, box, mask, box_ref, mask_ref = jax.device_get(forward(
        variables, _nhwc(ref['z']), _nhwc(ref['x']), ref['box_roi'], ref['mask_roi'],
        _nhwc(ref['box_features']), _nhwc(ref['mask_features'])))
    ours = {'backbone_z4': template['backbone'][4], 'backbone_x0': out['backbone_x'][0],
            'backbone_x1': out['backbone_x'][1], 'cls': out['cls'], 'loc': out['loc'],
            'box_features': out['box_features'], 'mask_features': out['mask_features']}
    for level in range(LEVELS):
        ours[f'neck_z{level}'] = template['neck'][level]
        ours[f'neck_x{level}'] = out['neck_x'][level]
        ours[f'dsa_z{level}'] = out['dsa_z'][level]
        ours[f'dsa_x{level}'] = out['dsa_x'][level]
        for branch in 'zx':
            ours[f'dcn_offset_{branch}{level}'] = offsets[f'dcn_offset_{branch}{level}']
    for prefix, head, logits in (('box', box, 'deltas'), ('mask', mask, 'logits')):
        ours[f'{prefix}_pool0'] = head['pool0']
        ours[f'{prefix}_offsets'] = head['offsets']
        ours[f'{prefix}_pool'] = head['pool']
    ours['box_deltas'] = box['deltas']
    ours['mask_logits'] = mask['logits']
    heads_alone = {'box_pool': box_ref['pool'], 'box_deltas': box_ref['deltas'],
                   'box_offsets': box_ref['offsets'], 'mask_pool': mask_ref['pool'],
                   'mask_offsets': mask_ref['offsets'], 'mask_logits': mask_ref['logits']}
    return dict(config=config, state_dict=state_dict, variables=variables, ref=ref, ours=ours,
                heads_alone=heads_alone)


def _compare(ours, ref, names):
    report, failures = [], []
    for name in names:
        value, expected = _nchw(ours[name]), ref[name]
        if name.endswith('_offsets'):          # ours [R, P, P, 2] (dx, dy) = NHWC of (R, 2, P, P)
            value = np.transpose(np.asarray(ours[name]), (0, 3, 1, 2))
        assert value.shape == expected.shape, (name, value.shape, expected.shape)
        diff = float(np.max(np.abs(value.astype(np.float64) - expected)))
        bound = 1e-4 * max(1.0, float(np.max(np.abs(expected))))
        report.append(f'{name} {diff / max(1.0, float(np.max(np.abs(expected)))):.1e}')
        if not diff <= bound:
            failures.append(f'{name}: max |port - ref| = {diff:.3e} > {bound:.3e}')
    print('\nmax|port - ref| / max(1, max|ref|): ' + '; '.join(report))
    assert not failures, failures


def test_conversion_covers_every_key(reference):
    state_dict, variables = reference['state_dict'], reference['variables']
    assert len(state_dict) == 645
    numbers = sum(np.size(v) for k, v in state_dict.items()
                  if not k.endswith('num_batches_tracked'))
    assert sum(np.size(x) for x in jax.tree_util.tree_leaves(variables)) == numbers
    params = variables['params']
    # Linear (O, I) -> Dense (I, O); ConvTranspose2d (I, O, kh, kw) -> (kh, kw, I, O).
    np.testing.assert_array_equal(params['bbox_head']['tail_det_0']['kernel'],
                                  state_dict['bbox_head.tail_det.0.weight'].T)
    np.testing.assert_array_equal(
        params['mask_head']['upsample']['transpose_kernel'],
        np.transpose(state_dict['mask_head.upsample.weight'], (2, 3, 0, 1)))
    np.testing.assert_array_equal(params['feature_enhance']['cam_uses_1']['gamma'],
                                  state_dict['feature_enhance.cam_uses.1.gamma'])
    np.testing.assert_array_equal(
        params['feature_enhance']['deform_convs_2']['kernel'],
        np.transpose(state_dict['feature_enhance.deform_convs.2.weight'], (2, 3, 1, 0)))


def test_backbone_and_neck(reference):
    names = ['backbone_z4', 'backbone_x0', 'backbone_x1']
    names += [f'neck_{b}{level}' for level in range(LEVELS) for b in 'zx']
    _compare(reference['ours'], reference['ref'], names)


def test_dsa_offsets_and_outputs(reference):
    names = [f'{kind}_{b}{level}' for level in range(LEVELS) for b in 'zx'
             for kind in ('dcn_offset', 'dsa')]
    _compare(reference['ours'], reference['ref'], names)


def test_rpn_and_fused_features(reference):
    _compare(reference['ours'], reference['ref'], ['cls', 'loc', 'box_features', 'mask_features'])


def test_box_refinement(reference):
    _compare(reference['ours'], reference['ref'],
             ['box_pool0', 'box_offsets', 'box_pool', 'box_deltas'])


def test_mask_refinement(reference):
    _compare(reference['ours'], reference['ref'],
             ['mask_pool0', 'mask_offsets', 'mask_pool', 'mask_logits'])


def test_heads_on_reference_features(reference):
    """The box and mask heads fed the reference's fused features (no upstream error)."""
    _compare(reference['heads_alone'], reference['ref'],
             ['box_offsets', 'box_pool', 'box_deltas', 'mask_offsets', 'mask_pool',
              'mask_logits'])


def test_roi_corners_round_half_away_from_zero(reference):
    """The bundle's RoIs through C round: corners as the kernel rounds them (no .5 ties here,
    so compare with numpy's round too); and c_round itself on exact ties."""
    for name in ('box_roi', 'mask_roi'):
        roi = reference['ref'][name]
        np.testing.assert_array_equal(np.asarray(c_round(jnp.asarray(roi[:, 1:]))),
                                      np.round(roi[:, 1:]))
    ties = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, 249.5], np.float32)
    np.testing.assert_array_equal(np.asarray(c_round(jnp.asarray(ties))),
                                  [1, 2, 3, -1, -3, 0, 250])
