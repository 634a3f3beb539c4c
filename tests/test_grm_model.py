"""GRM network pieces on the tiny config: shapes, division, masked attention, converter, MAE,
tracker."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import traverse_util

from configs.grm import get_config
from grm_jax import convert, division, head, mae, model, tracker, vit

from helpers import FakeTensor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tiny():
    config = get_config('tiny')
    config.model.patch_size = 8   # a non-default patch size: 8x8 template and 16x16 search tokens
    variables = model.init_variables(config, jax.random.PRNGKey(0))
    return config, variables


def _inputs(config, batch, seed=0):
    m = config.model
    rng = np.random.default_rng(seed)
    template = rng.normal(size=(batch, m.template_size, m.template_size, 3)).astype(np.float32)
    search = rng.normal(size=(batch, m.search_size, m.search_size, 3)).astype(np.float32)
    return jnp.asarray(template), jnp.asarray(search)


def test_tiny_shapes(tiny):
    config, variables = tiny
    template, search = _inputs(config, 2)
    apply = jax.jit(model.build_model(config).apply)
    out = apply(variables, template, search, np.zeros(2, np.float32))     # per-sample thresholds
    feat, layers, nx = 16, 3, 256          # 128 / 8; depth 4 -> 3 division blocks
    assert out['backbone_out'].shape == (2, 64 + nx, 64)
    assert out['score_map'].shape == (2, feat, feat)
    assert out['size_map'].shape == (2, feat, feat, 2)
    assert out['offset_map'].shape == (2, feat, feat, 2)
    assert out['pred_boxes'].shape == (2, 4)
    assert out['division_logprobs'].shape == (layers, 2, nx, 2)
    assert out['decisions'].shape == (layers, 2, nx)
    assert out['decision_fraction'].shape == (2, layers)
    np.testing.assert_allclose(np.exp(out['division_logprobs']).sum(-1), 1.0, atol=1e-5)
    assert set(np.unique(out['decisions'])) <= {0.0, 1.0}
    # Block 1 sees the same input whatever the threshold: sample 1 switches to p0 < 0.9.
    mixed = apply(variables, template, search, np.array([0.0, 0.9], np.float32))
    np.testing.assert_array_equal(mixed['decisions'][:, 0], out['decisions'][:, 0])
    p0 = np.exp(np.asarray(mixed['division_logprobs'][0, 1, :, 0]))
    np.testing.assert_array_equal(mixed['decisions'][0, 1], (p0 < 0.9).astype(np.float32))
    assert apply._cache_size() == 1
    score = np.asarray(out['score_map'])
    assert score.min() >= 1e-4 and score.max() <= 1 - 1e-4
    # pos_embed_z / x are the bicubic resize of the (unused) 785-row pretrained pos_embed.
    backbone = variables['params']['backbone']
    assert backbone['pos_embed'].shape == (1, 28 * 28 + 1, 64)
    assert backbone['pos_embed_z'].shape == (1, 64, 64)
    assert backbone['pos_embed_x'].shape == (1, 256, 64)


def test_init_rules(tiny):
    config, variables = tiny
    abstract = jax.eval_shape(lambda: model.build_model(config).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 128, 128, 3))))
    assert (jax.tree_util.tree_structure(abstract)
            == jax.tree_util.tree_structure(jax.tree_util.tree_map(jnp.asarray, variables)))
    params = variables['params']
    attn = params['backbone']['blocks_1']['attn']
    qkv = np.asarray(attn['qkv']['kernel'])
    assert abs(qkv.std() - 0.02) < 0.002 and not np.any(attn['qkv']['bias'])
    assert abs(np.asarray(attn['divide_predict']['dense0']['kernel']).std() - 0.02) < 0.002
    np.testing.assert_array_equal(params['backbone']['norm']['scale'], 1.0)
    np.testing.assert_array_equal(params['backbone']['norm']['bias'], 0.0)
    conv = np.asarray(params['box_head']['conv2_size']['conv']['kernel'])   # 3x3, 64 -> 32
    bound = np.sqrt(6.0 / (9 * 64 + 9 * 32))
    assert np.abs(conv).max() <= bound and np.abs(conv).max() > 0.9 * bound
    patch = np.asarray(params['backbone']['patch_embed']['proj']['kernel'])  # fan_in 8*8*3
    assert np.abs(patch).max() <= 1 / np.sqrt(192) and np.abs(patch).max() > 0.9 / np.sqrt(192)
    np.testing.assert_array_equal(params['box_head']['conv1_ctr']['bn']['scale'], 1.0)
    stats = variables['batch_stats']['box_head']['conv1_ctr']['bn']
    np.testing.assert_array_equal(stats['var'], 1.0)
    np.testing.assert_array_equal(stats['mean'], 0.0)
    # Different keys give different draws; the same key the same draws.
    again = model.init_variables(config, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(again['params']['backbone']['pos_embed'],
                                  params['backbone']['pos_embed'])
    other = model.init_variables(config, jax.random.PRNGKey(1))
    assert not np.array_equal(other['params']['backbone']['pos_embed'],
                              params['backbone']['pos_embed'])


def test_gumbel_straight_through_reaches_every_division_layer(tiny):
    config, variables = tiny
    template, search = _inputs(config, 2, seed=1)
    gru = model.build_model(config)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=(2, 320, 64)).astype(np.float32))

    def loss(params):
        out, _ = gru.apply({'params': params, 'batch_stats': variables['batch_stats']},
                           template, search, train=True, mutable=['batch_stats'],
                           rngs={'dropout': jax.random.PRNGKey(3), 'gumbel': jax.random.PRNGKey(4)})
        return jnp.sum(out['backbone_out'] * weights) + jnp.sum(out['score_map'])

    grads = jax.jit(jax.grad(loss))(variables['params'])
    for i in range(1, 4):
        divide = grads['backbone'][f'blocks_{i}']['attn']['divide_predict']
        for layer in ('dense0', 'dense1', 'dense2'):
            assert np.abs(np.asarray(divide[layer]['kernel'])).max() > 0, (i, layer)
            assert np.abs(np.asarray(divide[layer]['bias'])).max() > 0, (i, layer)


def test_gumbel_forward_is_hard_one_hot():
    logprobs = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(0), (4, 50, 2)))
    onehot = division.gumbel_straight_through(jax.random.PRNGKey(1), logprobs)
    np.testing.assert_array_equal(np.sort(np.asarray(onehot), axis=-1), [[[0.0, 1.0]] * 50] * 4)


def test_gumbel_noise_is_finite_where_exponential_reaches_zero():
    # With this key and shape, jax.random.exponential draws an exact 0 (whose -log is inf): the
    # draw that made a tiny-config training run NaN. The decisions must stay finite.
    key, shape = jax.random.PRNGKey(4), (1 << 19, 2)
    assert float(jax.random.exponential(key, shape, jnp.float32).min()) == 0.0
    logprobs = jnp.full(shape, np.log(0.5), jnp.float32)
    soft_grad = jax.grad(lambda lp: division.gumbel_straight_through(key, lp)[:, 1].sum())(logprobs)
    decisions = np.asarray(division.gumbel_straight_through(key, logprobs))
    np.testing.assert_array_equal(np.sort(decisions, axis=-1), np.tile([0.0, 1.0], (shape[0], 1)))
    assert np.isfinite(np.asarray(soft_grad)).all()


def test_drop_path_per_sample():
    x = jnp.ones((64, 3, 2))
    drop = vit.DropPath(0.5)
    out = np.asarray(drop.apply({}, x, True, rngs={'dropout': jax.random.PRNGKey(0)}))
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) == {0.0, 2.0}                 # kept samples scaled by 1/keep
    assert np.all(per_sample.min(1) == per_sample.max(1))            # one draw per sample
    np.testing.assert_array_equal(drop.apply({}, x, False), x)       # identity at eval


def test_mask_table():
    # 1 template token, then a class-0 and a class-1 search token.
    onehot = jnp.asarray([[[1.0, 0.0], [0.0, 1.0]]])
    mask = np.asarray(division.attention_mask(onehot, num_template=1))[0]
    expected = np.array([[1, 0, 1],     # T  -> T, S1
                         [0, 1, 1],     # S0 -> S0, S1
                         [1, 1, 1]],    # S1 -> all
                        np.float32)
    np.testing.assert_array_equal(mask, expected)
    # Two templates, two class-0 tokens: T rows see only T, S0 rows only search (two-stream).
    mask = np.asarray(division.attention_mask(jnp.asarray([[[1.0, 0.0]] * 2]), 2))[0]
    np.testing.assert_array_equal(mask, np.kron(np.eye(2), np.ones((2, 2))))


def test_masked_softmax_matches_hand_reference():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(2, 3, 5, 5)) * 4).astype(np.float32)
    mask = (rng.random((2, 1, 5, 5)) > 0.5).astype(np.float32)
    got = np.asarray(division.masked_softmax_attention(jnp.asarray(logits), jnp.asarray(mask)))
    expected = np.zeros_like(got, dtype=np.float64)
    eps, n = 1e-6, 5
    for b in range(2):
        for h in range(3):
            for i in range(5):
                row = logits[b, h, i].astype(np.float64)
                e = np.exp(row - row.max()) * mask[b, 0, i]
                expected[b, h, i] = (e + eps / n) / (e.sum() + eps)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
    # Masked keys get exactly (eps/N) / (S + eps), not zero.
    b, h, i = 0, 0, int(np.argmax(mask[0, 0].sum(-1) < 5))
    j = int(np.argmin(mask[0, 0, i]))
    assert mask[0, 0, i, j] == 0 and got[b, h, i, j] > 0


def test_threshold_semantics():
    p0 = np.array([0.3, 0.45, 0.55, 0.7], np.float32)
    logprobs = jnp.asarray(np.log(np.stack([p0, 1 - p0], -1)))
    class1 = lambda t: np.asarray(division.inference_onehot(logprobs, t)[..., 1])
    np.testing.assert_array_equal(class1(0.0), [1, 1, 0, 0])     # argmax
    np.testing.assert_array_equal(class1(0.4), [1, 0, 0, 0])     # p0 < 0.4
    np.testing.assert_array_equal(class1(0.6), [1, 1, 1, 0])     # p0 < 0.6
    traced = jax.jit(lambda t: division.inference_onehot(logprobs, t)[..., 1])
    np.testing.assert_array_equal(traced(np.float32(0.4)), [1, 0, 0, 0])


def test_decode_boxes_hand_case():
    score = np.zeros((1, 4, 4), np.float32)
    score[0, 2, 1] = 0.9            # row 2, col 1
    score[0, 0, 3] = 0.8
    size = np.full((1, 4, 4, 2), 0.1, np.float32)
    size[0, 2, 1] = (0.3, 0.4)
    offset = np.zeros((1, 4, 4, 2), np.float32)
    offset[0, 2, 1] = (0.5, 0.25)
    offset[0, 0, 3] = (0.1, 0.2)
    box = np.asarray(head.decode_boxes(jnp.asarray(score), jnp.asarray(size), jnp.asarray(offset)))
    np.testing.assert_allclose(box, [[1.5 / 4, 2.25 / 4, 0.3, 0.4]], rtol=1e-6)
    window = np.ones((4, 4), np.float32)
    window[2, 1] = 0.5              # windowing moves the peak to (0, 3)
    box = np.asarray(head.decode_boxes(jnp.asarray(score), jnp.asarray(size), jnp.asarray(offset),
                                       jnp.asarray(window)))
    np.testing.assert_allclose(box, [[3.1 / 4, 0.2 / 4, 0.1, 0.1]], rtol=1e-6)


def test_official_round_trip(tiny):
    config, variables = tiny
    state_dict = convert.to_official(variables, config)
    depth = 4
    assert len(state_dict) == depth * 12 + (depth - 1) * 6 + 6 + 2 + 3 * (4 * 6 + 2)
    assert state_dict['backbone.blocks.1.attn.qkv.weight'].shape == (192, 64)
    assert state_dict['backbone.blocks.1.attn.divide_predict.0.weight'].shape == (64, 128)
    assert state_dict['box_head.conv1_ctr.0.weight'].shape == (64, 64, 3, 3)
    assert 'backbone.blocks.0.attn.divide_predict.0.weight' not in state_dict
    state_dict['box_head.conv1_ctr.1.num_batches_tracked'] = np.array(7)   # ignored
    back = convert.from_official(state_dict, config)
    # Torch-like tensors (anything with .detach().cpu().numpy()) are accepted too.
    tensor_like = {k: FakeTensor(v) for k, v in state_dict.items()}
    from_tensors = convert.from_official({'net': tensor_like, 'epoch': 300}, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, from_tensors)
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           jax.tree_util.tree_map(np.asarray, variables), back)
    # Layout: torch Linear [out, in] is the transposed Dense kernel; conv OIHW -> HWIO.
    np.testing.assert_array_equal(
        state_dict['backbone.blocks.2.mlp.fc1.weight'],
        np.asarray(variables['params']['backbone']['blocks_2']['mlp']['fc1']['kernel']).T)
    np.testing.assert_array_equal(
        state_dict['backbone.patch_embed.proj.weight'][5, 2, 1, 3],
        np.asarray(variables['params']['backbone']['patch_embed']['proj']['kernel'])[1, 3, 2, 5])


def test_converter_errors_name_the_key(tiny):
    config, variables = tiny
    state_dict = convert.to_official(variables, config)
    missing = dict(state_dict)
    del missing['backbone.blocks.3.attn.divide_predict.2.bias']
    with pytest.raises(ValueError, match=r'backbone\.blocks\.3\.attn\.divide_predict\.2\.bias'):
        convert.from_official(missing, config)
    wrong = dict(state_dict)
    wrong['backbone.pos_embed_x'] = np.zeros((1, 100, 64), np.float32)
    with pytest.raises(ValueError, match=r'backbone\.pos_embed_x.*\(1, 100, 64\)'):
        convert.from_official(wrong, config)
    unknown = dict(state_dict)
    unknown['module.backbone.norm.weight'] = np.ones(64, np.float32)
    with pytest.raises(ValueError, match=r'module\.backbone\.norm\.weight'):
        convert.from_official(unknown, config)


def test_convert_cli_npz(tmp_path):
    from tracking.checkpoint import restore_variables

    config = get_config('tiny')   # exactly what the CLI's --config builds
    variables = model.init_variables(config, jax.random.PRNGKey(0))
    state_dict = convert.to_official(variables, config)
    np.savez(tmp_path / 'official.npz', **state_dict)
    out_dir = tmp_path / 'converted'
    convert.main([str(tmp_path / 'official.npz'), str(out_dir),
                  '--config', str(REPO / 'configs' / 'grm.py') + ':tiny'])
    restored = restore_variables(str(out_dir))
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           jax.tree_util.tree_map(np.asarray, variables), restored)


def test_bicubic_resize_hand_cases():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(mae.torch_bicubic_resize(image, 5, 7), image)   # identity
    constant = np.full((14, 14, 2), 3.5, np.float32)
    np.testing.assert_allclose(mae.torch_bicubic_resize(constant, 8, 20), 3.5, rtol=1e-6)
    # 4 -> 2: source x = 0.5, taps (-1 -> 0, 0, 1, 2) with Keys(-0.75) weights
    # (-0.09375, 0.59375, 0.59375, -0.09375); output 1 (x = 2.5) taps 1, 2, 3, 4 -> 3.
    impulse = np.zeros((1, 4, 1), np.float32)
    impulse[0, 1, 0] = 1.0
    np.testing.assert_allclose(mae.torch_bicubic_resize(impulse, 1, 2)[0, :, 0],
                               [0.59375, -0.09375], rtol=1e-6)
    impulse = np.roll(impulse, -1, axis=1)     # at index 0: clamped tap -1 adds to it
    np.testing.assert_allclose(mae.torch_bicubic_resize(impulse, 1, 2)[0, :, 0], [0.5, 0.0],
                               atol=1e-7)
    # A = -0.75 does not reproduce a linear ramp exactly (only A = -0.5 does). 8 -> 16 samples
    # at s = 0.5 d - 0.25, so t = frac(s) alternates 0.75 / 0.25. For t = 0.75 the Keys weights
    # of taps floor(s) - 1 .. + 2 are (-0.03515625, 0.26171875, 0.87890625, -0.10546875), whose
    # first moment about s is -0.046875; t = 0.25 mirrors it (+0.046875).
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None], (2, 1, 1))
    out = mae.torch_bicubic_resize(ramp, 2, 16)[0, :, 0]
    source = 0.5 * np.arange(4, 12) - 0.25
    expected = source + np.where(source % 1 == 0.25, 0.046875, -0.046875)
    np.testing.assert_allclose(out[4:12], expected, atol=1e-6)


def test_load_mae_into(tiny):
    config, variables = tiny
    rng = np.random.default_rng(5)
    official = convert.to_official(variables, config)
    mae_dict = {k[len('backbone.'):]: rng.normal(size=v.shape).astype(np.float32)
                for k, v in official.items()
                if k.startswith('backbone.') and 'divide' not in k and 'pos_embed_' not in k}
    mae_dict['decoder_embed.weight'] = np.zeros((4, 4), np.float32)   # ignored, as strict=False
    loaded = mae.load_mae_into(variables, {'model': mae_dict}, config)
    backbone = loaded['params']['backbone']
    np.testing.assert_array_equal(np.asarray(backbone['blocks_1']['attn']['qkv']['kernel']),
                                  mae_dict['blocks.1.attn.qkv.weight'].T)
    # Division MLPs and the head keep their values.
    np.testing.assert_array_equal(
        np.asarray(backbone['blocks_1']['attn']['divide_predict']['dense0']['kernel']),
        np.asarray(variables['params']['backbone']['blocks_1']['attn']['divide_predict']['dense0']
                   ['kernel']))
    grid = mae_dict['pos_embed'][0, 1:].reshape(28, 28, 64)
    np.testing.assert_allclose(backbone['pos_embed_x'][0],
                               mae.torch_bicubic_resize(grid, 16, 16).reshape(256, 64), rtol=1e-6)
    np.testing.assert_allclose(backbone['pos_embed_z'][0],
                               mae.torch_bicubic_resize(grid, 8, 8).reshape(64, 64), rtol=1e-6)
    bad = dict(mae_dict, **{'norm.weight': np.ones(10, np.float32)})
    with pytest.raises(ValueError, match=r'backbone\.norm\.weight'):
        mae.load_mae_into(variables, bad, config)


def test_hann_window():
    window = tracker.hann2d(16)
    one_d = np.sqrt(np.diag(window))
    np.testing.assert_allclose(one_d[7:9], 0.99149, atol=1e-5)
    np.testing.assert_allclose(one_d[0], 0.5 * (1 - np.cos(2 * np.pi / 17)), rtol=1e-6)
    np.testing.assert_allclose(window, window.T)


def test_tracker_tiny_runs_and_validates(tiny):
    config, variables = tiny
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    grm = tracker.GRMTracker(config, variables, threshold=0.4)
    with pytest.raises(RuntimeError):
        grm.track(frame)
    for bad in ([10, 10, 0, 5], [10, np.nan, 5, 5], [10, 10, -3, 5]):
        with pytest.raises(ValueError, match='init box'):
            grm.initialize(frame, bad)
    grm.initialize(frame, [50.0, 40.0, 30.0, 20.0])
    for _ in range(2):
        box = grm.track(frame)
        assert box.shape == (4,) and np.all(np.isfinite(box))
        assert box[0] >= 0 and box[0] <= 150 and box[2] >= 10 and box[3] >= 10
    # Another threshold reuses the same compiled step (the threshold is traced, in the state).
    other = tracker.GRMTracker(config, variables, threshold=0.0)
    other.initialize(frame, [50.0, 40.0, 30.0, 20.0])
    other.track(frame)
    assert tracker.jitted_fns(config)[1]._cache_size() == 1


@pytest.mark.parametrize('variant, num_keys, feat', [('tiny', 152, 8), ('vitb_256', 296, 16),
                                                     ('vitl_320', 512, 20)])
def test_layout_matches_model_variables(variant, num_keys, feat):
    """Every official key maps onto a model variable of the right shape, and vice versa."""
    config = get_config(variant)
    m = config.model
    template = jnp.zeros((1, m.template_size, m.template_size, 3))
    search = jnp.zeros((1, m.search_size, m.search_size, 3))
    gru = model.build_model(config)
    abstract = jax.eval_shape(lambda: gru.init(jax.random.PRNGKey(0), template, search))
    flat = {path: leaf.shape for path, leaf in traverse_util.flatten_dict(abstract).items()}
    layout = convert.official_layout(config)
    assert len(layout) == num_keys       # official count minus the 12 num_batches_tracked
    mapped = {}
    for key, entry in layout.items():
        shape = convert._to_flax(np.zeros(entry.torch_shape, np.float32), entry.kind).shape
        mapped[(entry.collection,) + entry.path] = shape
    assert mapped == flat
    out = jax.eval_shape(lambda v: gru.apply(v, template, search), abstract)
    assert out['score_map'].shape == (1, feat, feat)
    assert out['decisions'].shape == (m.depth - 1, 1, feat * feat)


def test_bicubic_resize_matches_torch_interpolate():
    # tests/data/bicubic_torch.npz: torch 2.13 F.interpolate(mode='bicubic', align_corners=False)
    # of a random (1, 4, 14, 14) array (the MAE 14x14 position grid) to 8, 16 and 20.
    data = np.load(Path(__file__).parent / 'data' / 'bicubic_torch.npz')
    x = data['x'][0].transpose(1, 2, 0)
    for size in (8, 16, 20):
        expected = data[f'out_{size}'][0].transpose(1, 2, 0)
        np.testing.assert_allclose(mae.torch_bicubic_resize(x, size, size), expected, atol=1e-5)
