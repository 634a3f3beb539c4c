"""SiamAttn (siam/siamattn.py) against the official code's float32 forward pass.

The bundle /work/shared/reference/siamattn_r50_l234 holds what the official ModelBuilder computed
on the tracker's template and frame-1 search crops of vot/bag, for weights rebuilt from its
manifest. Here the same weights go through `siam.convert.from_official` (the real conversion path)
and every recorded array must lie within max|port - ref| <= 1e-4 x max(1, max|ref|) (the bundle
README's bound; float64 against the float32 reference is 2.5e-5 on every array).
The forward runs once per module (about a minute on two cores with compilation).
"""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.siamattn import get_config
from siam.convert import from_official
from siam.deform import c_round, deform_conv2d
from siam.refine import pool_sizes
from siam.siamattn import build_model

from helpers import SHARED, reference_state_dict

BUNDLE = SHARED / 'reference' / 'siamattn_r50_l234'
ROOT = Path(__file__).resolve().parents[1]
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


# --- small unit checks (no reference data needed) -------------------------------------------

def test_tiny_model_shapes_and_converter_round_trip():
    from siam.convert import to_official
    from siam.siamattn import dummy_inputs, variable_shapes

    config = get_config('tiny')
    box_pool, pool = pool_sizes(config.model.refine)   # tiny: 4x4 box pool, 8x8 mask pool
    ch = config.model.refine.channels
    assert ch == 32                                     # tiny's refinement width
    shapes = variable_shapes(config.model)
    assert set(shapes) == {'params', 'batch_stats'}     # no sown intermediates
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda spec: rng.standard_normal(spec.shape).astype(spec.dtype), shapes)
    state_dict = to_official(variables)
    assert state_dict['mask_head.upsample.weight'].shape == (ch, ch, 4, 4)      # (I, O, kh, kw)
    assert state_dict['bbox_head.tail_det.0.weight'].shape == (32, ch * box_pool ** 2)
    assert state_dict['feature_enhance.pams.0.gamma'].shape == (1,)
    restored = from_official(state_dict, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored, variables)
    del state_dict['feature_enhance.cam_uses.2.gamma']
    with pytest.raises(ValueError, match='feature_enhance.cam_uses.2.gamma'):
        from_official(state_dict, config)

    model = build_model(config.model)
    z, x, box_rois, mask_rois = dummy_inputs(config.model, batch=2, rois=3)
    out = jax.eval_shape(lambda v: model.apply(v, z, x, box_rois, mask_rois), shapes)
    assert out['cls'].shape == (2, 25, 25, 10) and out['loc'].shape == (2, 25, 25, 20)
    assert out['box_features'].shape == (2, 25, 25, ch)
    assert out['mask_features'].shape == (2, 63, 63, ch)
    assert out['box']['deltas'].shape == (3, 4)
    assert out['box']['offsets'].shape == (3, box_pool, box_pool, 2)
    assert out['mask']['logits'].shape == (3, 4 * pool, 4 * pool, 1)   # stride-4 upsampling


def test_convert_cli_reads_a_siamattn_checkpoint(tmp_path):
    """python -m siam.convert IN.npz OUT --config configs/siamattn.py:tiny -> SiamAttn variables."""
    from siam import convert
    from siam.siamattn import variable_shapes
    from tracking.checkpoint import restore_variables

    config = get_config('tiny')
    rng = np.random.default_rng(5)
    variables = jax.tree_util.tree_map(
        lambda spec: rng.standard_normal(spec.shape).astype(spec.dtype),
        variable_shapes(config.model))
    np.savez(tmp_path / 'official.npz', **convert.to_official(variables))
    convert.main([str(tmp_path / 'official.npz'), str(tmp_path / 'converted'),
                  '--config', str(ROOT / 'configs' / 'siamattn.py') + ':tiny'])
    restored = restore_variables(str(tmp_path / 'converted'))
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, restored)


def test_dsa_with_zero_gains_is_dcn_of_three_times_the_input():
    """With every gain 0 (the official init) each of the three terms is its residual, so the
    level's output is DCN(3 x input); with gains the attention terms are live."""
    from siam.attention import FeatureEnhance

    rng = np.random.default_rng(1)
    zs = (jnp.asarray(rng.standard_normal((1, 3, 3, 8)), jnp.float32),)
    xs = (jnp.asarray(rng.standard_normal((1, 6, 6, 8)), jnp.float32),)
    module = FeatureEnhance(in_channels=(8,))
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), zs, xs)
    params = jax.tree_util.tree_map(lambda v: v, variables['params'])   # a mutable copy
    params['deform_convs_0']['conv_offset']['bias'] = jnp.asarray(
        rng.uniform(-1, 1, 18), jnp.float32)                  # non-zero offsets
    apply = jax.jit(module.apply)
    (z_out,), (x_out,) = apply({'params': params}, zs, xs)
    kernel = params['deform_convs_0']['kernel']
    for inp, out in ((zs[0], z_out), (xs[0], x_out)):
        offsets = jnp.broadcast_to(params['deform_convs_0']['conv_offset']['bias'],
                                   inp.shape[:3] + (18,))
        # The offset conv's kernel is zero-initialised: offsets are its bias everywhere.
        np.testing.assert_allclose(np.asarray(out),
                                   np.asarray(jax.jit(deform_conv2d)(3 * inp, offsets, kernel)),
                                   rtol=1e-5, atol=1e-5)
    params['cam_uses_0']['gamma'] = jnp.ones(1)
    (z_live,), _ = apply({'params': params}, zs, xs)
    assert float(jnp.max(jnp.abs(z_live - z_out))) > 1e-2


def test_channel_affinity_is_softmax_of_minus_gram():
    from siam.attention import channel_affinity

    x = np.random.default_rng(2).standard_normal((1, 4, 5, 6)).astype(np.float32)
    f = x.reshape(20, 6).astype(np.float64)
    gram = f.T @ f
    expected = np.exp(-gram - np.max(-gram, axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(channel_affinity(jnp.asarray(x)))[0], expected,
                               rtol=1e-4, atol=1e-6)


def test_align_corners_resize_and_transposed_conv():
    from siam.refine import PatchConvTranspose, resize_align_corners

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 4, 2)).astype(np.float32)
    out = np.asarray(resize_align_corners(jnp.asarray(x), 9))
    # align_corners: corners map to corners; output (2, 2) sits at source (1.0, 0.75).
    np.testing.assert_allclose(out[0, [0, -1]][:, [0, -1]], x[0, [0, -1]][:, [0, -1]], atol=1e-6)
    expected = 0.25 * x[0, 1, 0] + 0.75 * x[0, 1, 1]
    np.testing.assert_allclose(out[0, 2, 2], expected, rtol=1e-5)
    # Downsampling 125 -> 63 takes every other pixel exactly (scale 2, no antialiasing).
    big = rng.standard_normal((1, 125, 125, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(resize_align_corners(jnp.asarray(big), 63)),
                               big[:, ::2, ::2], atol=1e-6)

    module = PatchConvTranspose(3, 4)
    v = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 3, 2)))
    k, b = np.asarray(v['params']['transpose_kernel']), np.asarray(v['params']['bias'])
    y = np.asarray(module.apply(v, jnp.asarray(x[:, :2, :3])))
    # PyTorch ConvTranspose2d(stride = kernel = 4): y[4i + a, 4j + c] = sum_ch x[i, j] W[a, c].
    assert y.shape == (1, 8, 12, 3)
    np.testing.assert_allclose(y[0, 4 * 1 + 2, 4 * 2 + 3], x[0, 1, 2] @ k[2, 3] + b, rtol=1e-5)
