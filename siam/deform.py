"""Deformable convolution (DCNv1) and deformable RoI pooling, as jittable JAX ops (NHWC).

Both follow the official SiamAttn kernels (mmdetection-v1 `deform_conv_cuda`, `deform_pool_cuda`)
exactly as /work/shared/specs/siamattn_port.md sections 2 and 3 describe them; every position is
computed in float32 in the kernels' operation order, because RoI corners and pooling samples sit on
rounding and skip boundaries in real tracks (the bundle README's "knife edges").

`deform_conv2d`: bilinear sampling by four gathers, then one matmul over (tap, channel).
Gradients come from JAX's autodiff through the gathers (scatter-adds); docs/siamattn.md has the
measured forward/backward times that showed no custom VJP is needed.

`deform_roi_pool`: deformable RoI pooling (group_size 1, part_size = output size): RoI corners
rounded half away from zero, a 4x4 grid of samples per bin starting at the bin's corner in
quarter-bin steps, samples outside the map skipped (not counted), the rest clamped and bilinearly
interpolated, the bin the mean of its counted samples (0 if none).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

SAMPLES_PER_PART = 4      # sample grid per bin and axis (mmdetection's default)


def c_round(v):
    """C's round(): half away from zero, exactly (float32 in, float32 out).

    `jnp.round` rounds half to even, and sign(v) * floor(|v| + 0.5) errs when |v| + 0.5 rounds
    up (v = 0.49999997); here floor(|v|) is exact and |v| - floor(|v|) is exact too.
    """
    a = jnp.abs(v)
    f = jnp.floor(a)
    return jnp.sign(v) * (f + (a - f >= 0.5).astype(v.dtype))


def _gather_rows(flat, index):
    """flat [N, C], index int32 [...] (in range) -> [..., C]. One gather from the whole map
    (batch folded into the rows), so its gradient is one scatter-add into [N, C]."""
    return jnp.take(flat, index, axis=0, mode='clip')


def deform_conv2d(x, offset, kernel, stride: int = 1, padding: int = 1, dilation: int = 1,
                  precision=None):
    """DCNv1 (torchvision.ops.deform_conv2d without mask or bias, one offset group), NHWC.

    x: [B, H, W, C]; kernel: [kh, kw, C, O] (HWIO, as flax convs);
    offset: [B, Ho, Wo, 2 * kh * kw], channel 2k the y (row) and 2k + 1 the x (column) offset of
    tap k = i * kw + j, in input pixels (the channel order of the official `conv_offset`).
    Tap (i, j) of output (ho, wo) samples y = (ho * stride - padding + i * dilation) + dy,
    x = (wo * stride - padding + j * dilation) + dx (pixel centres at integers); a sample with
    y <= -1, x <= -1, y >= H or x >= W is 0, otherwise it is the bilinear interpolation of its
    four corners, each corner outside the map counting as 0.
    Returns [B, Ho, Wo, O] = sum over taps and channels of kernel[i, j, c, o] * sample.
    """
    b, h, w, c = x.shape
    kh, kw, kc, out_channels = kernel.shape
    if kc != c:
        raise ValueError(f'deform_conv2d: kernel {kernel.shape} expects {kc} input channels, '
                         f'input {x.shape} has {c}')
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    taps = kh * kw
    if offset.shape != (b, ho, wo, 2 * taps):
        raise ValueError(f'deform_conv2d: offset must be {(b, ho, wo, 2 * taps)} for input '
                         f'{x.shape} and kernel {kernel.shape}, got {offset.shape}')
    offset = offset.astype(x.dtype).reshape(b, ho, wo, taps, 2)
    # Integer base positions (exact in float32), then + offset as the kernel does.
    tap_i, tap_j = np.divmod(np.arange(taps), kw)
    base_y = (np.arange(ho)[:, None] * stride - padding + tap_i[None, :] * dilation)
    base_x = (np.arange(wo)[:, None] * stride - padding + tap_j[None, :] * dilation)
    py = jnp.asarray(base_y[None, :, None, :], x.dtype) + offset[..., 0]     # [B, Ho, Wo, K]
    px = jnp.asarray(base_x[None, None, :, :], x.dtype) + offset[..., 1]
    inside = (py > -1) & (px > -1) & (py < h) & (px < w)
    y0f, x0f = jnp.floor(py), jnp.floor(px)
    ly, lx = py - y0f, px - x0f
    hy, hx = 1 - ly, 1 - lx
    y0, x0 = y0f.astype(jnp.int32), x0f.astype(jnp.int32)
    y1, x1 = y0 + 1, x0 + 1
    flat = x.reshape(b * h * w, c)
    image = jnp.arange(b, dtype=jnp.int32)[:, None, None, None] * (h * w)

    def corner(yy, xx):
        valid = inside & (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
        index = image + jnp.clip(yy, 0, h - 1) * w + jnp.clip(xx, 0, w - 1)
        values = _gather_rows(flat, index)                                 # [B, Ho, Wo, K, C]
        return jnp.where(valid[..., None], values, jnp.zeros((), x.dtype))

    # val = w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4, left to right, as deformable_im2col_bilinear.
    cols = ((hy * hx)[..., None] * corner(y0, x0) + (hy * lx)[..., None] * corner(y0, x1)
            + (ly * hx)[..., None] * corner(y1, x0) + (ly * lx)[..., None] * corner(y1, x1))
    weights = kernel.reshape(taps, c, out_channels)
    return jnp.einsum('bhwkc,kco->bhwo', cols, weights, precision=precision)


def roi_bins(rois, spatial_scale: float, out_size: int, dtype=jnp.float32):
    """The kernel's RoI geometry, in `dtype` (float32: the official kernels' arithmetic):
    rois [R, 5] (batch index, x1, y1, x2, y2 in input pixels) -> dict of [R] arrays start_w,
    start_h (map pixels), width, height (>= 0.1), bin_w, bin_h, sub_w, sub_h (bin / 4), in the
    kernel's order: start = round(x1) * scale - 0.5, end = (round(x2) + 1) * scale - 0.5,
    width = max(end - start, 0.1), bin = width / P, sub = bin / 4."""
    t = jnp.dtype(dtype).type
    rois = jnp.asarray(rois).astype(dtype)
    scale = t(spatial_scale)
    start_w = c_round(rois[:, 1]) * scale - t(0.5)
    start_h = c_round(rois[:, 2]) * scale - t(0.5)
    end_w = (c_round(rois[:, 3]) + t(1)) * scale - t(0.5)
    end_h = (c_round(rois[:, 4]) + t(1)) * scale - t(0.5)
    width = jnp.maximum(end_w - start_w, t(0.1))
    height = jnp.maximum(end_h - start_h, t(0.1))
    bin_w = width / t(out_size)
    bin_h = height / t(out_size)
    return dict(start_w=start_w, start_h=start_h, width=width, height=height, bin_w=bin_w,
                bin_h=bin_h, sub_w=bin_w / t(SAMPLES_PER_PART), sub_h=bin_h / t(SAMPLES_PER_PART))



def deform_roi_pool(features, rois, offsets, spatial_scale: float, out_size: int,
                    trans_std: float = 0.1):
    """Deformable RoI pooling (mmdetection-v1 DeformRoIPooling, group_size 1, part_size =
    out_size, sample_per_part 4), NHWC.

    features: [B, H, W, C]; rois: [R, 5] float32 (batch index, x1, y1, x2, y2) in input pixels
    (the 255 search crop), mapped onto the map by spatial_scale; offsets: [R, P, P, 2] (last axis
    (dx, dy), the offset MLP's output before `* trans_std`) or None (no offsets).
    Per RoI: start = round(x1) * scale - 0.5, end = (round(x2) + 1) * scale - 0.5 (C round),
    size = max(end - start, 0.1), bin = size / P. Bin (ph, pw) starts at
    pw * bin_w + start_w + dx * trans_std * width (same for h with dy) and averages the samples
    at start + i * bin / 4, i = 0..3 on each axis that lie inside [-0.5, W - 0.5] x
    [-0.5, H - 0.5] (clamped to [0, W - 1] x [0, H - 1], floor/ceil bilinear); 0 if none does.
    Positions are computed in the features' dtype (float32: exactly the kernel's arithmetic).
    Returns [R, P, P, C]. R and P are static; the batch index is rounded toward zero.
    Four gathers of every sample, summed in the kernel's order; the gradient w.r.t. the features
    is a scatter-add per sample and channel (slow in XLA:CPU, see docs/siamattn.md).
    """
    b, h, w, c = features.shape
    dtype = features.dtype
    t = jnp.dtype(dtype).type
    rois = jnp.asarray(rois)
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f'deform_roi_pool: rois must be [R, 5], got {rois.shape}')
    r, p, s = rois.shape[0], out_size, SAMPLES_PER_PART
    g = roi_bins(rois, spatial_scale, out_size, dtype)
    bins = jnp.arange(p, dtype=dtype)
    wstart = bins[None, None, :] * g['bin_w'][:, None, None] + g['start_w'][:, None, None]
    hstart = bins[None, :, None] * g['bin_h'][:, None, None] + g['start_h'][:, None, None]
    wstart = jnp.broadcast_to(wstart, (r, p, p))
    hstart = jnp.broadcast_to(hstart, (r, p, p))
    if offsets is not None:
        if offsets.shape != (r, p, p, 2):
            raise ValueError(f'deform_roi_pool: offsets must be {(r, p, p, 2)}, got '
                             f'{offsets.shape}')
        std = t(trans_std)
        offsets = offsets.astype(dtype)
        wstart = wstart + (offsets[..., 0] * std) * g['width'][:, None, None]
        hstart = hstart + (offsets[..., 1] * std) * g['height'][:, None, None]
    steps = jnp.arange(s, dtype=dtype)
    # Per axis [R, P(ph), P(pw), S]: x depends on iw only, y on ih only.
    sw = wstart[..., None] + steps * g['sub_w'][:, None, None, None]
    sh = hstart[..., None] + steps * g['sub_h'][:, None, None, None]
    counted_w = (sw >= -0.5) & (sw <= w - 0.5)
    counted_h = (sh >= -0.5) & (sh <= h - 0.5)
    sw = jnp.clip(sw, 0, w - 1)
    sh = jnp.clip(sh, 0, h - 1)
    x0f, y0f = jnp.floor(sw), jnp.floor(sh)
    x0, y0 = x0f.astype(jnp.int32), y0f.astype(jnp.int32)
    x1, y1 = jnp.ceil(sw).astype(jnp.int32), jnp.ceil(sh).astype(jnp.int32)
    dx, dy = sw - x0f, sh - y0f
    batch = jnp.clip(rois[:, 0].astype(jnp.int32), 0, b - 1)
    zero = jnp.zeros((), dtype)
    # The kernel's sample grid [R, P, P, S(ih), S(iw)].
    counted = counted_h[..., :, None] & counted_w[..., None, :]
    x0, x1, dx = (v[..., None, :] for v in (x0, x1, dx))
    y0, y1, dy = (v[..., :, None] for v in (y0, y1, dy))
    flat = features.reshape(b * h * w, c)
    image = batch[:, None, None, None, None] * (h * w)

    def value(yy, xx):
        return _gather_rows(flat, image + yy * w + xx)                       # [R, P, P, S, S, C]

    # bilinear_interp's order: (1-dx)(1-dy) v11 + (1-dx) dy v12 + dx (1-dy) v21 + dx dy v22.
    one = t(1)
    val = (((one - dx) * (one - dy))[..., None] * value(y0, x0)
           + ((one - dx) * dy)[..., None] * value(y1, x0)
           + (dx * (one - dy))[..., None] * value(y0, x1)
           + (dx * dy)[..., None] * value(y1, x1))
    val = jnp.where(counted[..., None], val, zero)
    total = jnp.zeros((r, p, p, c), dtype)
    for ih in range(s):            # the kernel's accumulation order (ih outer, iw inner)
        for iw in range(s):
            total = total + val[:, :, :, ih, iw]
    count = jnp.sum(counted, axis=(3, 4)).astype(dtype)[..., None]
    return jnp.where(count > 0, total / jnp.maximum(count, 1), zero)

