"""The Winograd inference paths (test.conv_impl 'winograd' = F(2x2, 3x3), 'winograd4' =
F(4x4, 3x3)) against XLA's convolutions.

Error model (float32, unit roundoff u = 2^-24). A Winograd conv computes
y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A; to first order in u its rounding error is at most
gamma_k * W, where W is the same algorithm run on |d| and |g| with the matrices' absolute values
(componentwise bound of a bilinear algorithm, Higham ch. 3 / Barabasz et al. 2020), and k the
longest chain of roundings: weight transform (2 x 3 terms + the rounded entries of G: 8),
input transform (one n^2-term dot: n^2 + 1), products (C), output transform (n^2 + 1). The
float32 reference conv adds gamma_{9C+1} * conv(|d|, |g|). Per output, W / conv(|d|, |g|) is at
most (amp)^2 with amp = max_i sum_j |A^T_ij| (|G| 1)_j (|B^T| 1)_j / 3: 2.67^2 = 7.1 for
F(2x2) and 9.87^2 = 97 for F(4x4) with the points 0, +-1, 1/2, -2 (siam.layers.WINOGRAD_POINTS),
which is why F(4x4)'s error is about 14x F(2x2)'s.
"""
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

from helpers import numpy_variables  # noqa: E402
from siam import layers  # noqa: E402
from siam.layers import (winograd_conv3x3, winograd_eligible, winograd_matrices,  # noqa: E402
                         winograd_weights)

UNIT_ROUNDOFF = 2.0 ** -24


def _gamma(k):
    return k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)


def _amplification(tile):
    """max_i sum_j |A^T_ij| (|G| 1)_j (|B^T| 1)_j / 3: the 1-D growth of the error bound."""
    at, g, bt = winograd_matrices(tile)
    return float(np.max(np.abs(at) @ (np.abs(g).sum(1) * np.abs(bt).sum(1))) / 3)


@pytest.mark.parametrize('tile', [2, 4])
def test_winograd_matrices_are_exact_1d_correlations(tile):
    """float64: A^T ((G g) * (B^T d)) = sum_k g_k d_{i+k}; A^T, B^T exact in float32."""
    at, g, bt = winograd_matrices(tile)
    assert at.shape == (tile, tile + 2) and g.shape == (tile + 2, 3)
    assert bt.shape == (tile + 2, tile + 2)
    rng = np.random.default_rng(tile)
    for _ in range(20):
        d, w = rng.standard_normal(tile + 2), rng.standard_normal(3)
        expected = [w @ d[i:i + 3] for i in range(tile)]
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-13)
    for matrix in (at, bt):
        np.testing.assert_array_equal(matrix.astype(np.float32).astype(np.float64), matrix)
    with pytest.raises(ValueError, match='needs 5 finite points'):
        winograd_matrices(4, points=(0.0, 1.0, -1.0))


def _lax_conv(x, w, padding, dilation):
    return lax.conv_general_dilated(
        x, w, (1, 1), ((padding, padding), (padding, padding)), rhs_dilation=(dilation, dilation),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision='highest')


def _abs_winograd(x, w, padding, dilation, tile, monkeypatch):
    """W of the module docstring: the tile's algorithm on |x|, |w| with |A^T|, |G|, |B^T|."""
    with monkeypatch.context() as patch:
        exact = layers.winograd_matrices
        patch.setattr(layers, 'winograd_matrices',
                      lambda m: tuple(np.abs(a) for a in exact(m)))
        return winograd_conv3x3(jnp.abs(x), winograd_weights(jnp.abs(w), tile), padding,
                                dilation, precision='highest')


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('height, width, padding, dilation', [
    (31, 32, 1, 1), (8, 9, 0, 1), (13, 11, 1, 1), (31, 32, 2, 2), (9, 10, 4, 4), (17, 5, 2, 2)])
def test_winograd_conv_equals_lax_conv(tile, height, width, padding, dilation, monkeypatch):
    """Every output within the first-order float32 bound of the module docstring (Winograd's
    own gamma_k * W plus the reference's gamma_{9C+1} * conv(|x|, |w|)); odd sizes, sizes not a
    multiple of the tile, unpadded, dilation 2 and 4 (split into phases)."""
    channels = 5
    kx, kw = jax.random.split(jax.random.PRNGKey(height * 100 + width * 10 + dilation + tile))
    x = jax.random.normal(kx, (2, height, width, channels))
    w = jax.random.normal(kw, (3, 3, channels, 7))
    expected = _lax_conv(x, w, padding, dilation)
    out = winograd_conv3x3(x, winograd_weights(w, tile), padding, dilation, precision='highest')
    assert out.shape == expected.shape
    n = tile + 2
    bound = (_gamma(8 + 2 * (n * n + 1) + channels)
             * _abs_winograd(x, w, padding, dilation, tile, monkeypatch)
             + _gamma(9 * channels + 1) * _lax_conv(jnp.abs(x), jnp.abs(w), padding, dilation))
    error = jnp.abs(out - expected)
    worst = np.unravel_index(int(jnp.argmax(error - bound)), error.shape)
    assert bool(jnp.all(error <= bound)), (
        f'F({tile}x{tile}): error {float(error[worst]):.3g} > bound {float(bound[worst]):.3g} at '
        f'{worst}')


def test_error_bound_growth_of_the_two_tiles():
    """The docstring's amplification factors, from the matrices the layers use."""
    assert _amplification(2) == pytest.approx(8 / 3)
    assert _amplification(4) == pytest.approx(9.8667, abs=1e-4)


def test_eligibility_and_errors():
    assert winograd_eligible(3, 1, 2, 2) and winograd_eligible(3, 1, 0, 1)
    assert not winograd_eligible(3, 2, 1, 1)          # strided
    assert not winograd_eligible(3, 1, 1, 2)          # padding != dilation
    assert not winograd_eligible(1, 1, 0, 1)
    assert not winograd_eligible(3, 1, 1, 1, use_bias=True)
    with pytest.raises(ValueError, match='padding 1 must equal dilation 2'):
        winograd_conv3x3(jnp.zeros((1, 8, 8, 2)), jnp.zeros((4, 4, 2, 2)), 1, 2)
    with pytest.raises(ValueError, match=r'weights of shape \(5, 5, 2, 2\)'):
        winograd_conv3x3(jnp.zeros((1, 8, 8, 2)), jnp.zeros((5, 5, 2, 2)), 1, 1)
    with pytest.raises(ValueError, match="unknown impl 'winograd3'"):
        layers.conv(4, 3, impl='winograd3')


@pytest.mark.parametrize('impl', ['winograd', 'winograd4'])
def test_winograd_model_matches_xla(impl):
    """Tiny SiamRPN: the Winograd twin (variables from winograd_variables) gives the XLA
    model's outputs to float32 rounding. Eligible: conv2 of layer1_0, layer3_0 (dilation 1)
    and layer4_0 (dilation 2), the 3x3 downsample of layer3 and layer4 (layer2's is strided),
    and the depthwise RPN heads' unpadded conv_kernel / conv_search. Bound: 1e-5 of the output
    scale for F(2x2), times the growth of the per-conv error bound (amp^2, module docstring;
    97.4 / 7.1 = 13.7) for F(4x4)."""
    from siam.model import build_model, dummy_inputs, variable_shapes, winograd_variables
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/siamrpn.py:tiny'))
    variables = numpy_variables(variable_shapes(config.model), seed=0)
    fast_variables = winograd_variables(variables, config.model, impl)
    n = layers.WINOGRAD_TILES[impl] + 2
    kernels = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(fast_variables)[0]:
        if 'winograd_kernel' in jax.tree_util.keystr(path):
            kernels[jax.tree_util.keystr(path[1:-1])] = leaf.shape[:2]
    backbone = {f"['backbone']['{layer}']['{conv}']" for layer, conv in (
        ('layer1_0', 'conv2'), ('layer3_0', 'conv2'), ('layer4_0', 'conv2'),
        ('layer3_0', 'downsample_0'), ('layer4_0', 'downsample_0'))}
    heads = {f"['rpn_head']['rpn{level}']['{branch}']['{conv}']['0']"
             for level in (2, 3, 4) for branch in ('cls', 'loc')
             for conv in ('conv_kernel', 'conv_search')}
    assert set(kernels) == backbone | heads
    assert set(kernels.values()) == {(n, n)}
    z, x = dummy_inputs(config.model)
    z = jax.random.uniform(jax.random.PRNGKey(1), z.shape) * 255
    x = jax.random.uniform(jax.random.PRNGKey(2), x.shape) * 255
    slow = jax.jit(build_model(config.model).apply)(variables, z, x)
    fast = jax.jit(build_model(config.model, impl).apply)(fast_variables, z, x)
    growth = (_amplification(n - 2) / _amplification(2)) ** 2
    for name in ('cls', 'loc'):
        scale = float(jnp.max(jnp.abs(slow[name])))
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-5 * growth * scale,
                                   err_msg=name)


def test_unknown_conv_impl_is_rejected():
    from siam.model import build_model, winograd_variables
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/siamrpn.py:tiny'))
    with pytest.raises(ValueError, match="test.conv_impl: unknown 'fft'"):
        build_model(config.model, 'fft')
    with pytest.raises(ValueError, match="conv_impl 'xla' is not a Winograd impl"):
        winograd_variables({}, config.model, 'xla')
