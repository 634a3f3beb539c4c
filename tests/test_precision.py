"""config.test.precision ('float32' | 'tf32' | 'bfloat16') through tracking.precision.

Tiny GRM and SiamRPN++ configs, random weights, one small frame: every test compiles one network
or one tracking step per mode and runs in seconds. What is checked:
  - float32 is the computation without the precision layer, bit for bit (network outputs and a
    tracking step), so the parity tests are unaffected;
  - the traced programs really differ by mode: every network matmul/convolution carries the TF32
    hint in 'tf32' and takes bfloat16 operands in 'bfloat16';
  - on the CPU (XLA:CPU ignores the TF32 hint) tf32 gives the float32 results exactly;
  - bfloat16 changes the network output (not bit-equal), keeps it float32-typed and close, and
    the boxes finite and close; crops and state keep their dtypes;
  - a bad value is one ValueError naming config.test.precision and the allowed values.
"""
from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import grm as grm_configs
from configs import siamrpn as siam_configs
from grm_jax import functional as grm_functional
from grm_jax import tracker as grm_tracker
from grm_jax.model import GRM, init_variables as grm_init
from helpers import numpy_variables, tame_rpn_heads
from siam import functional as siam_functional
from siam.model import SiamRPN, build_model, variable_shapes
from tracking import precision

REPO = Path(__file__).resolve().parents[1]
H, W = 72, 96                                    # frame size
BOX0 = np.array([30.0, 20.0, 24.0, 18.0], np.float32)
ON_CPU = jax.default_backend() == 'cpu'


def _frames(seed=0):
    """Two frames [2, H, W, 3] uint8: textured background, a bright block moving by (3, 2) px."""
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 120, (1, H, W, 3), dtype=np.uint8), 2, axis=0)
    for t in range(2):
        frames[t, 20 + 2 * t:38 + 2 * t, 30 + 3 * t:54 + 3 * t] = (240, 200, 40)
    return frames


def _config(module, variant, mode):
    config = module.get_config(variant)
    config.test.precision = mode
    return config


@pytest.fixture(scope='module')
def grm():
    config = grm_configs.get_config('tiny')
    return config, jax.device_put(grm_init(config, jax.random.PRNGKey(0)))


@pytest.fixture(scope='module')
def siam():
    config = siam_configs.get_config('tiny')
    variables = numpy_variables(variable_shapes(config.model))
    return config, jax.device_put(dict(variables, params=tame_rpn_heads(variables['params'])))


# ------------------------------------------------------------------ the field and its errors

def _load_config_module(name):
    spec = importlib.util.spec_from_file_location(f'_precision_test_{name}',
                                                  REPO / 'configs' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['grm', 'siamrpn', 'siamattn', 'roam'])
def test_every_config_variant_defaults_to_float32(name):
    module = _load_config_module(name)
    for variant in module.VARIANTS:
        config = module.get_config(variant)
        assert config.test.precision == 'float32', (name, variant)
        assert precision.precision_of(config) == 'float32'


def test_missing_field_or_section_means_float32(grm):
    config = grm_configs.get_config('tiny')
    del config.test['precision']
    assert precision.precision_of(config) == 'float32'
    assert precision.precision_of(config.model) == 'float32'   # GRM's model section


@pytest.mark.parametrize('bad', ['fp16', 'float16', 'BFLOAT16', 'highest', 'tensorfloat32', None])
def test_bad_value_is_one_clear_error(bad):
    def check(raised):
        message = str(raised.value)
        assert 'config.test.precision' in message and repr(bad) in message
        for allowed in precision.PRECISIONS:
            assert allowed in message

    grm_config = _config(grm_configs, 'tiny', bad)
    with pytest.raises(ValueError) as raised:
        precision.precision_of(grm_config)
    check(raised)
    with pytest.raises(ValueError) as raised:
        grm_functional.tracker_fns(grm_config)
    check(raised)
    with pytest.raises(ValueError) as raised:
        siam_functional.tracker_fns(_config(siam_configs, 'tiny', bad))
    check(raised)
    with pytest.raises(ValueError) as raised:
        grm_tracker.jitted_fns(grm_config)
    check(raised)


# ------------------------------------------------------------------ what each mode traces

def _network_ops(fn, *args):
    """Counter of (primitive, operand dtypes, precision) of every dot_general and
    conv_general_dilated in fn's jaxpr, sub-jaxprs included."""
    counts = collections.Counter()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in ('dot_general', 'conv_general_dilated'):
                counts[(eqn.primitive.name, tuple(str(v.aval.dtype) for v in eqn.invars),
                        str(eqn.params.get('precision')))] += 1
            for param in eqn.params.values():
                for sub in param if isinstance(param, (list, tuple)) else (param,):
                    inner = getattr(sub, 'jaxpr', sub)
                    if hasattr(inner, 'eqns'):
                        walk(inner)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return counts


def _grm_inputs(config, batch=1):
    m = config.model
    rng = np.random.default_rng(1)
    template = rng.normal(size=(batch, m.template_size, m.template_size, 3)).astype(np.float32)
    search = rng.normal(size=(batch, m.search_size, m.search_size, 3)).astype(np.float32)
    return template, search, np.float32(0.0)


def test_each_mode_traces_the_network_it_says(grm, siam):
    highest, high = '(Precision.HIGHEST, Precision.HIGHEST)', '(Precision.HIGH, Precision.HIGH)'
    config, variables = grm
    ops = {mode: _network_ops(grm_functional.network_fn(config, mode), variables,
                              *_grm_inputs(config)) for mode in precision.PRECISIONS}
    total = sum(ops['float32'].values())
    assert total >= 40
    assert all(p == highest and d == ('float32', 'float32') for _, d, p in ops['float32'])
    # GRM's division mask einsum (0/1 one-hot products, exact in any precision; two
    # dot_generals in each divided block, every block but the first) fixes HIGHEST per op;
    # every other matmul/convolution carries the TF32 hint in 'tf32' and takes bfloat16
    # operands in 'bfloat16'.
    mask = ('dot_general', ('float32', 'float32'), highest)
    assert ops['tf32'][mask] == ops['bfloat16'][mask] == 2 * (config.model.depth - 1)
    assert sum(n for (_, _, p), n in ops['tf32'].items() if p == high) == total - ops['tf32'][mask]
    assert sum(n for (_, d, _), n in ops['bfloat16'].items() if d == ('bfloat16',) * 2) \
        == total - ops['tf32'][mask]

    config, variables = siam
    frame = jnp.asarray(_frames()[0])
    hw = jnp.array([H, W], jnp.int32)
    for mode, want in (('float32', (('float32',) * 2, highest)), ('tf32', (('float32',) * 2, high)),
                       ('bfloat16', (('bfloat16',) * 2, None))):
        fns = siam_functional.tracker_fns(_config(siam_configs, 'tiny', mode))
        state = jax.eval_shape(fns.init, variables, frame, hw, BOX0)
        counts = _network_ops(fns.step, variables, state, frame, hw)
        assert sum(counts.values()) >= 40
        for (_, dtypes, prec), _ in counts.items():
            assert dtypes == want[0] and (want[1] is None or prec == want[1]), (mode, counts)


# ------------------------------------------------------------------ float32 is today's path

@pytest.fixture(scope='module')
def grm_net(grm):
    """{mode: GRM network_fn outputs} on one random template/search pair, and 'plain': the
    pre-precision forward (model.apply under jax.default_matmul_precision('highest'))."""
    config, variables = grm
    inputs = _grm_inputs(config)
    model = GRM(config.model)

    def plain(variables, template, search, threshold):
        with jax.default_matmul_precision('highest'):
            return model.apply(variables, template, search, threshold)

    result = {mode: jax.device_get(jax.jit(grm_functional.network_fn(config, mode))(
        variables, *inputs)) for mode in precision.PRECISIONS}
    result['plain'] = jax.device_get(jax.jit(plain)(variables, *inputs))
    return result


def test_float32_network_is_the_plain_network_bit_for_bit(grm_net, siam):
    for key, value in grm_net['plain'].items():
        np.testing.assert_array_equal(grm_net['float32'][key], value, err_msg=key)

    config, variables = siam
    sia = build_model(config.model)
    frames = _frames().astype(np.float32)
    z = jnp.zeros((1, 127, 127, 3), jnp.float32).at[:, :H, :W].set(frames[:1])
    x = jnp.zeros((1, 255, 255, 3), jnp.float32).at[:, :H, :W].set(frames[1:])

    def both(apply):
        def run(v, z, x):
            zf = apply(v, z, method=SiamRPN.template_features)
            return zf, apply(v, x, zf, method=SiamRPN.track_forward)
        return jax.device_get(jax.jit(run)(variables, z, x))

    got = both(precision.network_call(sia.apply, 'float32', float32_matmul='highest'))
    want = both(sia.apply)
    if ON_CPU:   # the 'highest' scope touches only the RPN's level weighting: a no-op on CPU
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_array_equal(a, b)


def _run_step(fns, variables):
    frames = jnp.asarray(_frames())
    hw = jnp.array([H, W], jnp.int32)

    @jax.jit
    def go(variables):
        state = fns.init(variables, frames[0], hw, BOX0)
        state, out = fns.step(variables, state, frames[1], hw)
        return state, out
    return jax.device_get(go(variables))


@pytest.fixture(scope='module')
def steps(grm, siam):
    """{(tracker, mode): (state, out)} of one jitted init + step (GRM's tf32 is checked on the
    network, `grm_net`, to save a compilation)."""
    result = {}
    for name, module, (config, variables), make, modes in (
            ('grm', grm_configs, grm, grm_functional.tracker_fns, ('float32', 'bfloat16')),
            ('siam', siam_configs, siam, siam_functional.tracker_fns, precision.PRECISIONS)):
        for mode in modes:
            result[name, mode] = _run_step(make(_config(module, 'tiny', mode)), variables)
    return result


@pytest.mark.parametrize('name', ['grm', 'siam'])
def test_float32_step_is_the_program_of_a_config_without_the_field(grm, siam, name):
    """The same traced program (jaxpr text) for precision='float32' as for a config from before
    the field existed: float32 adds nothing to the step."""
    module, (_, variables), make = {
        'grm': (grm_configs, grm, grm_functional.tracker_fns),
        'siam': (siam_configs, siam, siam_functional.tracker_fns)}[name]
    legacy = module.get_config('tiny')
    del legacy.test['precision']
    frame, hw = jnp.asarray(_frames()[0]), jnp.array([H, W], jnp.int32)

    def program(fns):
        state = jax.eval_shape(fns.init, variables, frame, hw, BOX0)
        return (str(jax.make_jaxpr(fns.init)(variables, frame, hw, BOX0)),
                str(jax.make_jaxpr(fns.step)(variables, state, frame, hw)))

    assert program(make(_config(module, 'tiny', 'float32'))) == program(make(legacy))


@pytest.mark.skipif(not ON_CPU, reason='TF32 changes matmuls on Ampere+ GPUs; CPU ignores it')
@pytest.mark.parametrize('name', ['grm', 'siam'])
def test_tf32_equals_float32_on_cpu(grm_net, steps, name):
    if name == 'siam':
        for a, b in zip(jax.tree_util.tree_leaves(steps[name, 'tf32']),
                        jax.tree_util.tree_leaves(steps[name, 'float32'])):
            np.testing.assert_array_equal(a, b)
    else:
        for key, value in grm_net['float32'].items():
            np.testing.assert_array_equal(grm_net['tf32'][key], value, err_msg=key)


# ------------------------------------------------------------------ bfloat16

def test_bfloat16_network_differs_but_stays_close(grm, grm_net):
    _, variables = grm
    f32, bf16 = grm_net['float32'], grm_net['bfloat16']
    for key in ('score_map', 'size_map', 'offset_map', 'backbone_out'):
        assert bf16[key].dtype == jnp.float32, key
        a, b = np.asarray(f32[key]), np.asarray(bf16[key])
        assert not np.array_equal(a, b), key
        assert np.all(np.isfinite(b)), key
        # bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4%); through 4 blocks and
        # the head the outputs stay within a few of those steps of their scale.
        scale = np.max(np.abs(a))
        assert np.max(np.abs(a - b)) < 0.05 * scale, (key, np.max(np.abs(a - b)), scale)
    # the stored float32 variables are not modified by the call
    assert jax.tree_util.tree_leaves(variables)[0].dtype == jnp.float32


@pytest.mark.parametrize('name', ['grm', 'siam'])
def test_bfloat16_step_keeps_state_dtypes_and_close_finite_boxes(steps, name):
    state, out = steps[name, 'bfloat16']
    ref_state, ref_out = steps[name, 'float32']
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(ref_state)):
        assert a.dtype == b.dtype                      # float64 siam state, float32 template
    assert out['box'].dtype == np.float32 and np.all(np.isfinite(out['box']))
    assert np.isfinite(out['score'])
    assert ref_out['box'][0] != BOX0[0] or ref_out['box'][1] != BOX0[1]   # the box moved
    # Close: well within the target (24 x 18 px); a changed argmax cell would move it by a cell
    # (GRM: 16 crop px = 8 frame px here, SiamRPN++: 8 crop px ~ 4 frame px).
    assert np.max(np.abs(out['box'] - ref_out['box'])) < 2.0, (out['box'], ref_out['box'])
    assert abs(float(out['score']) - float(ref_out['score'])) < 0.02


def test_grm_adapter_compiles_one_step_per_precision(grm):
    config, _ = grm
    f32 = grm_tracker.jitted_fns(_config(grm_configs, 'tiny', 'float32'))
    bf16 = grm_tracker.jitted_fns(_config(grm_configs, 'tiny', 'bfloat16'))
    assert f32 is not bf16 and f32 is grm_tracker.jitted_fns(config)
