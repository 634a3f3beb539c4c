"""AlexNet, MobileNetV2 and the UP-channel RPN of siam/ against PyTorch fixtures, plus shapes,
converter layouts and the AlexNet tracker geometry.

The fixtures tests/data/siam_{alexlegacy,up,mobilev2}.npz were made by a standalone PyTorch
script written from /work/shared/specs/siamrpn.md sections 1.2, 1.3, 2 and 3 (no pysot code),
with reduced widths, random weights (conv weights exactly float16-representable) and random
BatchNorm statistics. Each holds the packed state_dict (`sd_*`) and NCHW outputs (`out/*`);
the inputs are `pattern_images`, an integer hash reproduced here.
"""
from pathlib import Path

import jax
import numpy as np
import pytest

from configs.siamrpn import get_config
from siam.anchors import score_size
from siam.backbones import build_backbone, output_channels
from siam.convert import from_official, to_official
from siam.layers import layer_of
from siam.model import SiamRPN, build_model, variable_shapes
from siam.tracker import SiamRPNTracker

DATA = Path(__file__).parent / 'data'
LEGACY_TO_LAYERS = {0: 'layer1.0', 1: 'layer1.1', 4: 'layer2.0', 5: 'layer2.1', 8: 'layer3.0',
                    9: 'layer3.1', 11: 'layer4.0', 12: 'layer4.1', 14: 'layer5.0', 15: 'layer5.1'}


def pattern_images(batch, size, seed):
    """[batch, size, size, 3] float32 integers 0..255 (the fixture script's splitmix64 hash)."""
    i = np.arange(batch * size * size * 3, dtype=np.uint64)
    h = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(56)).astype(np.float32).reshape(batch, size, size, 3)


def load_fixture(name):
    """-> (state_dict {key: np.ndarray, PyTorch shapes}, outputs {name: NCHW array})."""
    data = np.load(DATA / name)
    half, single = data['sd_half'], data['sd_single']
    state_dict, h, s = {}, 0, 0
    for key, shape_text in zip(data['sd_keys'], data['sd_shapes']):
        shape = tuple(int(n) for n in str(shape_text).split('x')) if str(shape_text) else ()
        size = int(np.prod(shape))
        if len(shape) == 4:
            value, h = half[h:h + size].astype(np.float32), h + size
        else:
            value, s = single[s:s + size], s + size
        if str(key).endswith('num_batches_tracked'):
            value = value.astype(np.int64)
        state_dict[str(key)] = value.reshape(shape)
    assert h == half.size and s == single.size
    outputs = {k[4:]: data[k] for k in data.files if k.startswith('out/')}
    return state_dict, outputs


def alex_config(width=1 / 16, rpn_type='depthwise'):
    config = get_config('alex')
    config.model.backbone.width_mult = width
    config.model.rpn.type = rpn_type
    config.model.rpn.in_channels = output_channels(config.model.backbone)
    return config


def mobilev2_config(width=0.125, channels=8):
    config = get_config('mobilev2')
    config.model.backbone.width_mult = width
    config.model.neck.out_channels = (channels,) * 3
    config.model.rpn.in_channels = (channels,) * 3
    return config


def _nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _assert_close(name, ours, expected):
    ours = _nchw(ours)
    assert ours.shape == expected.shape, f'{name}: {ours.shape} vs {expected.shape}'
    diff = float(np.max(np.abs(ours - expected)))
    bound = 1e-4 * max(1.0, float(np.max(np.abs(expected))))
    assert diff <= bound, f'{name}: max |port - torch| = {diff} > {bound}'
    print(f'{name}: max diff {diff:.2e} (bound {bound:.2e})')


def _forward(config, variables, z, x):
    model = build_model(config.model)
    template = jax.jit(lambda v, z: model.apply(v, z, method=SiamRPN.template_outputs))(
        variables, z)
    search = jax.jit(lambda v, x, zf: model.apply(v, x, zf, method=SiamRPN.track_forward))(
        variables, x, template['neck'])
    return template, search


def _shapes(config, z_size, x_size, batch=1):
    model = build_model(config.model)
    z = jax.ShapeDtypeStruct((batch, z_size, z_size, 3), np.float32)
    x = jax.ShapeDtypeStruct((batch, x_size, x_size, 3), np.float32)

    def run(z, x):
        variables = model.init(jax.random.PRNGKey(0), z, x)
        template = model.apply(variables, z, method=SiamRPN.template_outputs)
        return template, model.apply(variables, x, template['neck'],
                                     method=SiamRPN.track_forward), variables
    return jax.eval_shape(run, z, x)


# --- shapes (full width, no compute) ----------------------------------------------------------

def test_alex_shapes():
    config = get_config('alex')
    template, search, variables = _shapes(config, 127, 287, batch=2)
    assert [t.shape for t in template['backbone']] == [(2, 6, 6, 256)]
    assert [t.shape for t in template['neck']] == [(2, 6, 6, 256)]     # no neck
    assert [t.shape for t in search['neck_x']] == [(2, 26, 26, 256)]
    assert search['cls'].shape == (2, 21, 21, 10) and search['loc'].shape == (2, 21, 21, 20)
    _, train_search, _ = _shapes(config, 127, 255)                       # training size
    assert train_search['cls'].shape == (1, 17, 17, 10)
    params = variables['params']
    assert 'neck' not in params and set(params['rpn_head']) == {'cls', 'loc'}
    assert params['backbone']['layer1_0']['kernel'].shape == (11, 11, 3, 96)
    assert params['backbone']['layer5_0']['bias'].shape == (256,)


def test_mobilev2_shapes():
    config = get_config('mobilev2')
    assert output_channels(config.model.backbone) == (44, 134, 448)
    template, search, variables = _shapes(config, 127, 255)
    assert [t.shape for t in template['backbone']] == [(1, 15, 15, c) for c in (44, 134, 448)]
    assert [t.shape for t in template['neck']] == [(1, 7, 7, 256)] * 3
    assert search['cls'].shape == (1, 25, 25, 10) and search['loc'].shape == (1, 25, 25, 20)
    backbone = build_backbone(config.model.backbone)
    x_maps = jax.eval_shape(lambda x: backbone.init_with_output(jax.random.PRNGKey(0), x)[0],
                            jax.ShapeDtypeStruct((1, 255, 255, 3), np.float32))
    assert [m.shape for m in x_maps] == [(1, 31, 31, c) for c in (44, 134, 448)]
    params = variables['params']
    assert params['backbone']['layer0_0']['kernel'].shape == (3, 3, 3, 44)
    # layer4's first block: dilation changes 1 -> 2, so it uses dilation 1; depthwise 3x3.
    assert params['backbone']['layer4_0']['conv_3']['kernel'].shape == (3, 3, 1, 6 * 44)
    assert 'cls_weight' not in params['rpn_head']                      # weighted: False


def test_up_shapes():
    config = alex_config(width=1.0, rpn_type='up')
    _, search, variables = _shapes(config, 127, 287, batch=2)
    assert search['cls'].shape == (2, 21, 21, 10) and search['loc'].shape == (2, 21, 21, 20)
    head = variables['params']['rpn_head']
    assert head['template_cls_conv']['kernel'].shape == (3, 3, 256, 2560)
    assert head['template_loc_conv']['kernel'].shape == (3, 3, 256, 5120)
    assert head['loc_adjust']['kernel'].shape == (1, 1, 20, 20)
    assert set(variables['batch_stats']) == {'backbone'}                # no BN in the UP head


def test_backbone_modules_map_to_pysot_layers():
    alex = variable_shapes(get_config('alex').model)['params']['backbone']
    assert {layer_of(name) for name in alex} == {f'layer{i}' for i in range(1, 6)}
    mobile = variable_shapes(get_config('mobilev2').model)['params']['backbone']
    assert {layer_of(name) for name in mobile} == {f'layer{i}' for i in range(8)}


# --- numerical parity with the PyTorch fixtures -----------------------------------------------

def test_alexnet_legacy_parity_and_train_mode():
    state_dict, ref = load_fixture('siam_alexlegacy.npz')
    config = alex_config()
    variables = from_official(state_dict, config)
    z, x = pattern_images(2, 127, 1), pattern_images(2, 287, 2)
    template, search = _forward(config, variables, z, x)
    _assert_close('zf', template['neck'][0], ref['zf'])
    _assert_close('cls', search['cls'], ref['cls'])
    _assert_close('loc', search['loc'], ref['loc'])

    # layer4/layer5 BatchNorms on batch statistics (pysot TRAIN_LAYERS for AlexNet).
    backbone = build_backbone(config.model.backbone, 'highest')
    backbone_vars = {c: variables[c]['backbone'] for c in ('params', 'batch_stats')}
    (zf,), updates = backbone.apply(backbone_vars, z, ('layer4', 'layer5'),
                                    mutable=['batch_stats'])
    _assert_close('zf_train45', zf, ref['zf_train45'])
    layer5 = updates['batch_stats']['layer5_1']
    np.testing.assert_allclose(layer5['mean'], ref['layer5_running_mean'], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer5['var'], ref['layer5_running_var'], rtol=1e-4, atol=1e-5)
    # Layers outside train_layers keep their running statistics.
    np.testing.assert_array_equal(updates['batch_stats']['layer3_1']['var'],
                                  state_dict['backbone.features.9.running_var'])


def test_up_channel_rpn_parity():
    state_dict, ref = load_fixture('siam_up.npz')
    config = alex_config(rpn_type='up')
    variables = from_official(state_dict, config)
    _, search = _forward(config, variables, pattern_images(2, 127, 3), pattern_images(2, 255, 4))
    _assert_close('cls', search['cls'], ref['cls'])
    _assert_close('loc', search['loc'], ref['loc'])


def test_mobilev2_parity():
    state_dict, ref = load_fixture('siam_mobilev2.npz')
    config = mobilev2_config()
    variables = from_official(state_dict, config)
    template, search = _forward(config, variables, pattern_images(1, 127, 5),
                                pattern_images(1, 255, 6))
    for i in range(3):
        _assert_close(f'zb{i}', template['backbone'][i], ref[f'zb{i}'])
        _assert_close(f'zf{i}', template['neck'][i], ref[f'zf{i}'])
    _assert_close('cls', search['cls'], ref['cls'])
    _assert_close('loc', search['loc'], ref['loc'])


# --- converter: layouts, round trips, errors --------------------------------------------------

def _to_layers_layout(state_dict):
    """alexnetlegacy keys -> alexnet keys (backbone.features.4.x -> backbone.layer2.0.x)."""
    out = {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if parts[:2] == ['backbone', 'features']:
            key = '.'.join(['backbone', LEGACY_TO_LAYERS[int(parts[2])]] + parts[3:])
        out[key] = value
    return out


def _assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def _without_counters(state_dict):
    return {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}


def test_alexnet_both_layouts_round_trip():
    legacy, _ = load_fixture('siam_alexlegacy.npz')
    legacy_config = alex_config()
    layers_config = alex_config()
    layers_config.model.backbone.name = 'alexnet'
    layers = _to_layers_layout(legacy)
    from_legacy = from_official(legacy, legacy_config)
    from_layers = from_official(layers, layers_config)
    _assert_trees_equal(from_legacy, from_layers)
    for config, expected in ((legacy_config, legacy), (layers_config, layers)):
        exported = to_official(from_legacy, config)
        assert sorted(exported) == sorted(_without_counters(expected))
        for key, value in exported.items():
            np.testing.assert_array_equal(value, expected[key], err_msg=key)
    assert 'backbone.features.14.weight' in to_official(from_legacy, legacy_config)
    assert 'backbone.layer5.0.weight' in to_official(from_legacy)   # no config: mechanical


def test_alexnet_wrong_layout_is_named():
    legacy, _ = load_fixture('siam_alexlegacy.npz')
    layers_config = alex_config()
    layers_config.model.backbone.name = 'alexnet'
    with pytest.raises(ValueError, match='model.backbone.name=alexnetlegacy'):
        from_official(legacy, layers_config)
    with pytest.raises(ValueError, match='model.backbone.name=alexnet\\.'):
        from_official(_to_layers_layout(legacy), alex_config())


@pytest.mark.parametrize('fixture, make_config', [
    ('siam_mobilev2.npz', mobilev2_config),
    ('siam_up.npz', lambda: alex_config(rpn_type='up')),
])
def test_round_trip_and_key_errors(fixture, make_config):
    state_dict, _ = load_fixture(fixture)
    config = make_config()
    variables = from_official(state_dict, config)
    exported = to_official(variables, config)
    assert sorted(exported) == sorted(_without_counters(state_dict))
    _assert_trees_equal(from_official(exported, config), variables)

    key = sorted(exported)[len(exported) // 2]
    broken = dict(exported)
    del broken[key]
    broken['rpn_head.extra.weight'] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as error:
        from_official(broken, config)
    message = str(error.value)
    assert '1 missing key' in message and key in message
    assert '1 unexpected key' in message and 'rpn_head.extra.weight' in message


def test_unknown_backbone_and_rpn_are_errors():
    config = get_config('alex')
    config.model.backbone.name = 'vgg'
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        variable_shapes(config.model)
    config = get_config('alex')
    config.model.rpn.type = 'ban'
    with pytest.raises(ValueError, match="unknown RPN 'ban'"):
        variable_shapes(config.model)
    config = get_config('alex')
    config.model.rpn.in_channels = (256, 256)
    with pytest.raises(ValueError, match='single-level'):
        variable_shapes(config.model)


# --- tracker geometry -------------------------------------------------------------------------

def test_alex_configs_and_tracker_geometry():
    for variant in ('alex', 'alex_otb'):
        test = get_config(variant).test
        assert (test.penalty_k, test.window_influence, test.lr) == (0.16, 0.40, 0.30)
        assert (test.instance_size, test.base_size) == (287, 0)
    assert score_size(287, 127, 8, 0) == 21
    mobile = get_config('mobilev2').test
    assert (mobile.penalty_k, mobile.window_influence, mobile.lr) == (0.04, 0.4, 0.5)
    assert get_config('r50_l234').test.instance_size is None

    state_dict, _ = load_fixture('siam_alexlegacy.npz')
    config = alex_config()
    tracker = SiamRPNTracker(config, from_official(state_dict, config))
    assert tracker.search_size == 287 and tracker.score_size == 21
    assert tracker.anchors.shape == (5 * 21 * 21, 4) and tracker.window.shape == (5 * 21 * 21,)
    np.testing.assert_array_equal(tracker.anchors[0, :2], [-80, -80])   # -(21 // 2) * 8
    frame = pattern_images(1, 300, 7)[0].astype(np.uint8)
    tracker.initialize(frame, (120, 130, 40, 30))
    box = tracker.track(frame)
    assert box.shape == (4,) and np.all(np.isfinite(box)) and 0 <= tracker.best_score <= 1


@pytest.mark.parametrize('make_config', [alex_config, lambda: alex_config(rpn_type='up'),
                                         mobilev2_config])
def test_train_forward_shapes(make_config):
    """train_forward runs for every head (no neck for AlexNet) and updates BN statistics."""
    config = make_config()
    model = build_model(config.model)
    z = jax.ShapeDtypeStruct((2, 127, 127, 3), np.float32)
    x = jax.ShapeDtypeStruct((2, 255, 255, 3), np.float32)

    def run(z, x):
        variables = model.init(jax.random.PRNGKey(0), z, x)
        return model.apply(variables, z, x, ('layer4', 'layer5'), method=SiamRPN.train_forward,
                           mutable=['batch_stats'])
    out, _ = jax.eval_shape(run, z, x)
    size = 17 if config.model.backbone.name.startswith('alex') else 25
    assert out['cls'].shape == (2, size, size, 10) and out['loc'].shape == (2, size, size, 20)
