"""siam/deform.py against independent slow implementations written from the definitions
(/work/shared/specs/siamattn_port.md sections 2 and 3), plus finite-difference gradients.

The slow references are plain numpy loops over outputs and samples: DCN in float64, the
deformable RoI pooling as a float32 scalar transcription of the kernel's arithmetic (its positions
sit on rounding and skip boundaries, so the order of the float32 operations is part of the op).
"""
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siam.deform import c_round, deform_conv2d, deform_roi_pool

ROOT = Path(__file__).resolve().parents[1]
F32 = np.float32


# --- deformable convolution -------------------------------------------------------------------

def slow_deform_conv(x, offset, kernel, stride, padding, dilation):
    """x [B, H, W, C], offset [B, Ho, Wo, 2K] (y, x per tap), kernel [kh, kw, C, O]; float64."""
    x, offset, kernel = (np.asarray(a, np.float64) for a in (x, offset, kernel))
    b, h, w, c = x.shape
    kh, kw, _, o = kernel.shape
    _, ho, wo, _ = offset.shape
    out = np.zeros((b, ho, wo, o))

    def pixel(n, yy, xx):
        if 0 <= yy <= h - 1 and 0 <= xx <= w - 1:
            return x[n, yy, xx]
        return np.zeros(c)

    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                for ti in range(kh):
                    for tj in range(kw):
                        k = ti * kw + tj
                        y = i * stride - padding + ti * dilation + offset[n, i, j, 2 * k]
                        xx = j * stride - padding + tj * dilation + offset[n, i, j, 2 * k + 1]
                        if y <= -1 or xx <= -1 or y >= h or xx >= w:
                            continue
                        y0, x0 = math.floor(y), math.floor(xx)
                        ly, lx = y - y0, xx - x0
                        sample = ((1 - ly) * (1 - lx) * pixel(n, y0, x0)
                                  + (1 - ly) * lx * pixel(n, y0, x0 + 1)
                                  + ly * (1 - lx) * pixel(n, y0 + 1, x0)
                                  + ly * lx * pixel(n, y0 + 1, x0 + 1))
                        out[n, i, j] += sample @ kernel[ti, tj]
    return out


def _output_size(size, stride, padding, dilation, k=3):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


@pytest.mark.parametrize('stride,padding,dilation', [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_deform_conv_matches_slow_loop(stride, padding, dilation):
    """Offsets up to +-4 px on a 7x8 map: samples outside, on partial corners, far inside."""
    rng = np.random.default_rng(stride * 10 + dilation)
    x = rng.standard_normal((2, 7, 8, 3)).astype(F32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(F32)
    ho, wo = (_output_size(s, stride, padding, dilation) for s in (7, 8))
    offset = rng.uniform(-4, 4, (2, ho, wo, 18)).astype(F32)
    ours = jax.jit(deform_conv2d, static_argnums=(3, 4, 5))(x, offset, kernel, stride, padding,
                                                            dilation)
    expected = slow_deform_conv(x, offset, kernel, stride, padding, dilation)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=0, atol=2e-5)


def test_deform_conv_offset_order_is_y_then_x():
    """A single tap (the centre) and an offset of +1 row only: the output is the input shifted
    up by one row (channel 2k is y), zero below the last row."""
    x = np.arange(20, dtype=F32).reshape(1, 4, 5, 1)
    kernel = np.zeros((3, 3, 1, 1), F32)
    kernel[1, 1] = 1
    offset = np.zeros((1, 4, 5, 18), F32)
    offset[..., 2 * 4] = 1.0                      # tap 4 (centre), y
    out = np.asarray(deform_conv2d(x, offset, kernel))[0, :, :, 0]
    np.testing.assert_array_equal(out[:3], x[0, 1:, :, 0])
    np.testing.assert_array_equal(out[3], 0)


def test_deform_conv_zero_offsets_is_plain_conv():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 6, 5)).astype(F32)
    kernel = rng.standard_normal((3, 3, 5, 7)).astype(F32)
    ours = deform_conv2d(x, np.zeros((2, 9, 6, 18), F32), kernel)
    plain = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                         precision='highest')
    np.testing.assert_allclose(np.asarray(ours), np.asarray(plain), rtol=0, atol=1e-5)


def test_deform_conv_rejects_bad_offsets():
    with pytest.raises(ValueError, match='offset must be'):
        deform_conv2d(np.zeros((1, 5, 5, 2), F32), np.zeros((1, 5, 5, 9), F32),
                      np.zeros((3, 3, 2, 2), F32))


# --- deformable RoI pooling -----------------------------------------------------------------

def _c_round(v):
    v = float(v)
    return F32(math.copysign(math.floor(abs(v) + 0.5), v))   # exact in float64


def slow_roi_pool(features, rois, offsets, scale, p, trans_std=0.1, dtype=F32):
    """Scalar transcription of DeformablePSROIPoolForwardKernel (group_size 1, part_size p,
    4 samples per part) in `dtype` arithmetic. Returns (out [R, p, p, C], counts [R, p, p])."""
    t = dtype
    features = np.asarray(features, t)
    _, h, w, c = features.shape
    out = np.zeros((len(rois), p, p, c), t)
    counts = np.zeros((len(rois), p, p), int)
    for n, roi in enumerate(np.asarray(rois, F32)):
        img = features[int(roi[0])]
        s = t(scale)
        start_w = t(_c_round(roi[1])) * s - t(0.5)
        start_h = t(_c_round(roi[2])) * s - t(0.5)
        end_w = (t(_c_round(roi[3])) + t(1)) * s - t(0.5)
        end_h = (t(_c_round(roi[4])) + t(1)) * s - t(0.5)
        roi_w = max(end_w - start_w, t(0.1))
        roi_h = max(end_h - start_h, t(0.1))
        bin_w, bin_h = roi_w / t(p), roi_h / t(p)
        sub_w, sub_h = bin_w / t(4), bin_h / t(4)
        for ph in range(p):
            for pw in range(p):
                trans_x = trans_y = t(0)
                if offsets is not None:
                    trans_x = t(offsets[n, ph, pw, 0]) * t(trans_std)
                    trans_y = t(offsets[n, ph, pw, 1]) * t(trans_std)
                wstart = t(pw) * bin_w + start_w
                wstart = wstart + trans_x * roi_w
                hstart = t(ph) * bin_h + start_h
                hstart = hstart + trans_y * roi_h
                total = np.zeros(c, t)
                count = 0
                for ih in range(4):
                    for iw in range(4):
                        x = wstart + t(iw) * sub_w
                        y = hstart + t(ih) * sub_h
                        if x < -0.5 or x > w - 0.5 or y < -0.5 or y > h - 0.5:
                            continue
                        x = min(max(x, t(0)), t(w - 1))
                        y = min(max(y, t(0)), t(h - 1))
                        x1, x2 = math.floor(x), math.ceil(x)
                        y1, y2 = math.floor(y), math.ceil(y)
                        dx, dy = x - t(x1), y - t(y1)
                        one = t(1)
                        val = ((one - dx) * (one - dy) * img[y1, x1]
                               + (one - dx) * dy * img[y2, x1]
                               + dx * (one - dy) * img[y1, x2] + dx * dy * img[y2, x2])
                        total = total + val
                        count += 1
                counts[n, ph, pw] = count
                out[n, ph, pw] = total / t(count) if count else 0
    return out, counts


# (batch, x1, y1, x2, y2) in input pixels, scale 1/4 onto a 9x11 map (36x44 input pixels).
ROIS = np.array([
    [0, 6.0, 5.0, 30.0, 25.0],          # inside
    [1, -20.0, -12.0, 14.0, 9.0],       # partly outside (top-left)
    [0, 30.0, 20.0, 70.0, 60.0],        # partly outside (bottom-right)
    [1, 200.0, 150.0, 240.0, 180.0],    # entirely outside: every sample skipped -> 0
    [0, 20.0, 12.0, 8.0, 3.0],          # degenerate (x2 < x1, y2 < y1): width/height 0.1
    [1, 10.5, -10.5, 10.5, 2.5],        # half-integer corners (C round: 11, -11, 11, 3), 1 px
], F32)


@pytest.mark.parametrize('with_offsets', [False, True])
def test_deform_roi_pool_matches_slow_kernel(with_offsets):
    rng = np.random.default_rng(3)
    features = rng.standard_normal((2, 9, 11, 3)).astype(F32)
    p = 3
    offsets = None
    if with_offsets:
        # dx * 0.1 * roi width: +-6 -> up to +-0.6 RoI widths, several map pixels.
        offsets = rng.uniform(-6, 6, (len(ROIS), p, p, 2)).astype(F32)
    ours = jax.jit(deform_roi_pool, static_argnums=(3, 4))(features, ROIS, offsets, 0.25, p)
    expected, counts = slow_roi_pool(features, ROIS, offsets, 0.25, p)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=0, atol=2e-6)
    assert np.all(np.asarray(ours)[3] == 0) and np.all(counts[3] == 0)
    # Bins partly outside the map average only their counted samples.
    assert np.any((counts > 0) & (counts < 16)) and counts.max() == 16
    if with_offsets:
        still = slow_roi_pool(features, ROIS, None, 0.25, p)[0]
        assert np.max(np.abs(expected - still)) > 0.5


def test_deform_roi_pool_keeps_a_sample_exactly_on_the_skip_boundary():
    """The README's knife edge: on the 25x25 box map (scale 1 / (255 / 25)) the RoI x 206..261
    puts bin 3's third sample at w = 24.5 = W - 0.5 exactly in float32 (counted: the test is
    w > W - 0.5), while float64 puts it at 24.500000000000007 (skipped). Ours follows float32."""
    rng = np.random.default_rng(4)
    features = rng.uniform(0, 10, (1, 25, 25, 2)).astype(F32)
    rois = np.array([[0, 206.0, 100.0, 261.0, 150.0]], F32)
    scale = 1.0 / (255 / 25)
    ours = np.asarray(jax.jit(deform_roi_pool, static_argnums=(2, 3, 4))(features, rois, None,
                                                                         scale, 4))
    expected, counts = slow_roi_pool(features, rois, None, scale, 4)
    in_double, counts64 = slow_roi_pool(features, rois, None, scale, 4, dtype=np.float64)
    assert counts[0, 0, 3] == 12 and counts64[0, 0, 3] == 8
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=0)
    assert np.max(np.abs(ours[0, :, 3] - in_double[0, :, 3])) > 1e-2


def test_deform_roi_pool_rejects_bad_arguments():
    features = np.zeros((1, 5, 5, 2), F32)
    with pytest.raises(ValueError, match='rois must be'):
        deform_roi_pool(features, np.zeros((2, 4), F32), None, 0.25, 2)
    with pytest.raises(ValueError, match='offsets must be'):
        deform_roi_pool(features, np.zeros((2, 5), F32), np.zeros((2, 3, 3, 2), F32), 0.25, 2)


def test_c_round_is_half_away_from_zero():
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, -0.49999997, 127.5, 3.2], F32)
    np.testing.assert_array_equal(np.asarray(c_round(jnp.asarray(values))),
                                  [_c_round(v) for v in values])
    assert float(c_round(jnp.float32(2.5))) == 3.0 and float(jnp.round(2.5)) == 2.0


# --- gradients -----------------------------------------------------------------------------

_GRAD_SCRIPT = textwrap.dedent('''
    import jax
    jax.config.update('jax_enable_x64', True)
    import numpy as np
    from jax.test_util import check_grads
    from siam.deform import deform_conv2d, deform_roi_pool

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 6, 2))
    offset = rng.uniform(-2.5, 2.5, (1, 5, 6, 18))
    kernel = rng.standard_normal((3, 3, 2, 3))
    check_grads(jax.jit(lambda a, b, c: deform_conv2d(a, b, c)), (x, offset, kernel), order=1,
                modes=['rev'], eps=1e-6, atol=1e-6, rtol=1e-6)

    features = rng.standard_normal((2, 7, 8, 2))
    rois = np.array([[0, 3.0, 2.0, 25.0, 20.0], [1, -8.0, 4.0, 12.0, 40.0]], np.float32)
    offsets = rng.uniform(-3, 3, (2, 3, 3, 2))
    check_grads(jax.jit(lambda f, o: deform_roi_pool(f, rois, o, 0.25, 3)), (features, offsets),
                order=1, modes=['rev'], eps=1e-6, atol=1e-6, rtol=1e-6)
    print('gradients ok')
''')


def test_gradients_match_finite_differences():
    """Reverse-mode gradients w.r.t. input, offsets and weights against central differences,
    in float64 (jax x64, so in a subprocess)."""
    result = subprocess.run([sys.executable, '-c', _GRAD_SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'gradients ok' in result.stdout
