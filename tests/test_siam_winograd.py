"""The Winograd inference path (test.conv_impl='winograd') against XLA's convolutions."""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from siam.layers import winograd_conv3x3, winograd_eligible, winograd_weights  # noqa: E402


@pytest.mark.parametrize('size, padding, dilation', [
    (31, 1, 1), (15, 1, 1), (8, 0, 1), (31, 2, 2), (31, 4, 4), (15, 2, 2), (9, 4, 4)])
def test_winograd_conv_equals_lax_conv(size, padding, dilation):
    kx, kw = jax.random.split(jax.random.PRNGKey(size * 10 + dilation))
    x = jax.random.normal(kx, (2, size, size + 1, 5))
    w = jax.random.normal(kw, (3, 3, 5, 7))
    expected = lax.conv_general_dilated(
        x, w, (1, 1), ((padding, padding), (padding, padding)), rhs_dilation=(dilation, dilation),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision='highest')
    out = winograd_conv3x3(x, winograd_weights(w), padding, dilation, precision='highest')
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=2e-5 * float(jnp.max(jnp.abs(expected))))


def test_eligibility_and_errors():
    assert winograd_eligible(3, 1, 2, 2) and winograd_eligible(3, 1, 0, 1)
    assert not winograd_eligible(3, 2, 1, 1)          # strided
    assert not winograd_eligible(3, 1, 1, 2)          # padding != dilation
    assert not winograd_eligible(1, 1, 0, 1)
    assert not winograd_eligible(3, 1, 1, 1, use_bias=True)
    with pytest.raises(ValueError, match='padding 1 must equal dilation 2'):
        winograd_conv3x3(jnp.zeros((1, 8, 8, 2)), jnp.zeros((4, 4, 2, 2)), 1, 2)


def test_winograd_model_and_tracker_match_xla():
    """Tiny SiamRPN: the Winograd twin (variables from winograd_variables) gives the XLA
    model's outputs to float32 rounding. Eligible: conv2 of layer1_0, layer3_0 (dilation 1)
    and layer4_0 (dilation 2), the 3x3 downsample of layer3 and layer4 (layer2's is strided)."""
    from siam.model import build_model, dummy_inputs, init_variables, winograd_variables
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/siamrpn.py:tiny'))
    variables = init_variables(config.model, jax.random.PRNGKey(0))
    fast_variables = winograd_variables(variables, config.model)
    kernels = {jax.tree_util.keystr(p[2:-1]) for p, _ in
               jax.tree_util.tree_flatten_with_path(fast_variables)[0]
               if 'winograd_kernel' in jax.tree_util.keystr(p)}
    assert kernels == {f"['{layer}']['{conv}']" for layer, conv in (
        ('layer1_0', 'conv2'), ('layer3_0', 'conv2'), ('layer4_0', 'conv2'),
        ('layer3_0', 'downsample_0'), ('layer4_0', 'downsample_0'))}
    z, x = dummy_inputs(config.model)
    z = jax.random.uniform(jax.random.PRNGKey(1), z.shape) * 255
    x = jax.random.uniform(jax.random.PRNGKey(2), x.shape) * 255
    slow = jax.jit(build_model(config.model).apply)(variables, z, x)
    fast = jax.jit(build_model(config.model, 'winograd').apply)(fast_variables, z, x)
    for name in ('cls', 'loc'):
        scale = float(jnp.max(jnp.abs(slow[name])))
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-5 * scale, err_msg=name)
