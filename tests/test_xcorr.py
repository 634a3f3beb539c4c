"""siam.xcorr: grouped-conv cross-correlations against direct numpy loops (batch 3)."""
import jax
import numpy as np
import pytest

from siam.xcorr import xcorr_depthwise, xcorr_fast


def _loop_depthwise(search, kernel):
    batch, height, width, channels = search.shape
    _, k_h, k_w, _ = kernel.shape
    out = np.zeros((batch, height - k_h + 1, width - k_w + 1, channels), np.float64)
    for b in range(batch):
        for c in range(channels):
            for i in range(out.shape[1]):
                for j in range(out.shape[2]):
                    out[b, i, j, c] = np.sum(search[b, i:i + k_h, j:j + k_w, c]
                                             * kernel[b, :, :, c])
    return out


def _loop_fast(search, kernel):
    batch, height, width, channels = search.shape
    _, k_h, k_w, k_channels = kernel.shape
    outputs = k_channels // channels
    out = np.zeros((batch, height - k_h + 1, width - k_w + 1, outputs), np.float64)
    for b in range(batch):
        for k in range(outputs):
            weights = kernel[b, :, :, k * channels:(k + 1) * channels]
            for i in range(out.shape[1]):
                for j in range(out.shape[2]):
                    out[b, i, j, k] = np.sum(search[b, i:i + k_h, j:j + k_w, :] * weights)
    return out


def test_xcorr_depthwise_matches_loop():
    rng = np.random.default_rng(0)
    search = rng.standard_normal((3, 9, 8, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    out = np.asarray(jax.jit(xcorr_depthwise)(search, kernel))
    assert out.shape == (3, 7, 7, 4)
    np.testing.assert_allclose(out, _loop_depthwise(search, kernel), rtol=1e-5, atol=1e-5)


def test_xcorr_depthwise_hand_value():
    # One sample, one channel: a 2x2 kernel of ones sums each 2x2 window (no flip, no padding).
    search = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    kernel = np.array([[1, 0], [0, 2]], np.float32).reshape(1, 2, 2, 1)
    out = np.asarray(xcorr_depthwise(search, kernel))[0, :, :, 0]
    # out[i, j] = s[i, j] + 2 s[i + 1, j + 1]
    np.testing.assert_array_equal(out, [[0 + 8, 1 + 10], [3 + 14, 4 + 16]])


def test_xcorr_fast_matches_loop():
    rng = np.random.default_rng(1)
    search = rng.standard_normal((3, 8, 9, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5 * 4)).astype(np.float32)
    out = np.asarray(jax.jit(xcorr_fast)(search, kernel))
    assert out.shape == (3, 6, 7, 5)
    np.testing.assert_allclose(out, _loop_fast(search, kernel), rtol=1e-5, atol=1e-5)


def test_xcorr_rejects_bad_shapes():
    search = np.zeros((2, 8, 8, 4), np.float32)
    with pytest.raises(ValueError, match='batch'):
        xcorr_depthwise(search, np.zeros((3, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match='channel'):
        xcorr_depthwise(search, np.zeros((2, 3, 3, 5), np.float32))
    with pytest.raises(ValueError, match='multiple'):
        xcorr_fast(search, np.zeros((2, 3, 3, 6), np.float32))
