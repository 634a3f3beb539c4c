"""OpenCV-exact crops as jittable JAX functions, byte-identical to the host crops.

`sample_target_device` reproduces `tracking.crops.sample_target` (GRM/OSTrack: zero padding,
cv2.resize INTER_LINEAR) and `get_subwindow_device` reproduces `tracking.subwindow.get_subwindow`
(pysot: average-colour padding, cv2.resize INTER_LINEAR), byte for byte, with the box / centre /
window side as traced scalars and only the output size static. The frame is a uint8
[Hp, Wp, C] array padded bottom/right to a static shape; its real size is the int32 `frame_hw`.

What cv2.resize(uint8, INTER_LINEAR) does (OpenCV 5.0 imgproc/src/resize.cpp, as measured against
the cv2 in .venv), and what this module reproduces:
  * same size: a plain copy (the linear formula below is the identity there too);
  * window side exactly 2 x output (scale_x == scale_y == 2): INTER_AREA's fast path,
    out = (p00 + p01 + p10 + p11 + 2) >> 2 (ResizeAreaFastVec, all rows/columns are whole);
  * otherwise resizeGeneric_ with 11-bit fixed-point coefficients: for output index d,
    f = float32((d + 0.5) * scale - 0.5) with scale = 1 / (out / in) in double, s = floor(f),
    f -= s; coefficients (saturate_cast<short>((1 - f) * 2048), saturate_cast<short>(f * 2048)).
    Columns: s < 0 -> (s, f) = (0, 0); s >= in - 1 -> (in - 1, 0). Rows keep f and clip both
    source rows to [0, in - 1]. Horizontal pass in int32: h = a0 * p[s] + a1 * p[s + 1];
    vertical pass as VResizeLinear<uchar, int, short, ...> (vector and scalar paths agree):
    out = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2, saturated to uint8.
  * IPP (the wheel's HAL) is not used for uint8 INTER_LINEAR unless cv2.ipp.setUseIPP_NotExact(True)
    (off by default); INTER_LINEAR_EXACT (resize_bitExact) and OpenCL are other paths, not used by
    the host crops.
The position is computed here as the float32 nearest to the exact quotient
((2 d + 1) in - out) / (2 out), by integer long division (`div_rn32`; XLA's own division by a
broadcast scalar is not correctly rounded on CPU). OpenCV's double expression rounds to the same
float32: the exact quotient is never within its ~1e-15 relative error of a float32 rounding
boundary (checked for every source size 1..1200 in tests/test_device_crops.py).

The float64 att_mask of `sample_target` goes through IPP in the pip wheel (ipp_hal_resize accepts
64f INTER_LINEAR), whose taps at exactly-integer source positions differ from OpenCV's own path
(measured: 1 to 4 of 15,000 random sample_target boxes, 99 of ~17,000 random small masks);
`pad_mask_device` reproduces OpenCV's own path (as with cv2.ipp.setUseIPP(False)).

Host-side float64 geometry is reproduced exactly from float32 inputs: the crop side
ceil(sqrt(w h) factor) with an error-free w*h (split products) and an exact integer check of the
ceiling, the window origin round(x + w/2 - side/2) (Python's half-to-even) and pysot's
floor(c - side/2) with error-free sums. Boxes/centres are float32 on the device; the host functions
must be given the same (float32-representable) values to agree.

Limits (not checked under jit; a violating input gives an unspecified crop): box w, h > 0 and
finite; window side <= 46340 px and (2 * out_size) * side < 2**24; out_size <= 2047;
|coordinates| < 2**22; frame_hw within the padded frame's shape and >= 1.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

COEF_BITS = 11                      # OpenCV INTER_RESIZE_COEF_BITS
COEF_SCALE = 1 << COEF_BITS         # 2048


# ------------------------------------------------------------------ OpenCV INTER_LINEAR on uint8

def div_rn32(num, den):
    """float32 nearest (ties to even) to the exact quotient num / den, from integers only.

    num: int32 array, |num| < 2**24. den: int32 (scalar or broadcastable), 1 <= den < 2**12.
    Returns float32 with the shape of num. Why not num / den: XLA's CPU backend divides by a
    broadcast scalar with a reciprocal product, one ulp off in places (measured: 11057 / 254),
    and GPUs may approximate division; this long division is exact on any backend.
    """
    num = jnp.asarray(num, jnp.int32)
    den = jnp.asarray(den, jnp.int32)
    neg = num < 0
    a = jnp.abs(num)

    def bit_length(x):
        return 32 - jax.lax.clz(x)

    e0 = bit_length(a) - bit_length(den)                     # floor(log2(a / den)) is e0 or e0-1
    ge = jnp.where(e0 >= 0, a >= (den << jnp.maximum(e0, 0)), (a << jnp.maximum(-e0, 0)) >= den)
    exp = jnp.where(ge, e0, e0 - 1)                          # 2**exp <= a / den < 2**(exp + 1)
    shift = 24 - exp                                         # 1 <= shift <= 36
    whole, rem = a // den, a % den
    frac = jnp.zeros_like(a)
    for chunk in range(3):                     # floor(rem 2**shift / den), 12 bits per step
        bits = jnp.clip(shift - 12 * chunk, 0, 12)
        rem = rem << bits
        frac = (frac << bits) + rem // den
        rem = rem % den
    mx = (whole << shift) + frac                             # 25 bits: 24 + the rounding bit
    mant = mx >> 1
    up = ((mx & 1) == 1) & ((rem != 0) | ((mant & 1) == 1))  # round half to even, sticky = rem
    mant = mant + up.astype(jnp.int32)
    carry = mant == (1 << 24)
    exp = jnp.where(carry, exp + 1, exp)
    mant = jnp.where(carry, 1 << 23, mant)
    bits = ((exp + 127) << 23) | (mant & 0x7FFFFF) | jnp.where(neg, jnp.int32(-2 ** 31), 0)
    out = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return jnp.where(a == 0, jnp.float32(0), out)


def _positions(in_size, out_size: int):
    """float32((d + 0.5) * scale - 0.5), scale = in / out, as OpenCV rounds it: [out] float32."""
    if not 1 <= out_size < 2 ** 11:
        raise ValueError(f'device_crops: output size {out_size} outside [1, 2047]')
    d = jnp.arange(out_size, dtype=jnp.int32)
    return div_rn32((2 * d + 1) * jnp.asarray(in_size, jnp.int32) - out_size, 2 * out_size)


def resize_taps(in_size, out_size: int, clamp: bool):
    """OpenCV's INTER_LINEAR source indices and 11-bit coefficients along one axis.

    in_size: [] int32 source length (traced). out_size: static output length.
    clamp: True for columns (OpenCV resets (s, f) to the edge pixel outside the source), False for
    rows (f kept, both source rows clipped to the source).
    Returns (i0, i1 [out] int32 source indices in [0, in_size - 1], c0, c1 [out] int32
    coefficients, c0 + c1 == 2048 except at reset borders where (c0, c1) == (2048, 0)).
    """
    s, f = _floor_frac(in_size, out_size, clamp)
    c0, c1 = coefficients(f)
    return jnp.clip(s, 0, in_size - 1), jnp.clip(s + 1, 0, in_size - 1), c0, c1


def coefficients(f):
    """OpenCV's 11-bit INTER_LINEAR coefficients of fractions f [n] float32: (c0, c1) [n]
    int32, cvRound((1 - f) 2048) and cvRound(f 2048) (round half to even)."""
    c1 = jnp.round(f * COEF_SCALE).astype(jnp.int32)
    c0 = jnp.round((jnp.float32(1) - f) * COEF_SCALE).astype(jnp.int32)
    return c0, c1


def floor_frac(pos, in_size, clamp: bool):
    """OpenCV INTER_LINEAR's split of source positions: sx = floor(fx), fx -= sx, and for
    columns (clamp) the reset to the edge pixel outside the source.

    pos: [n] float32 source positions (`div_rn32((2 d + 1) in - out, 2 out)`); in_size: []
    int32 source length (traced). Returns (s [n] int32, f [n] float32); s is not clipped."""
    s = jnp.floor(pos)
    f = pos - s
    s = s.astype(jnp.int32)
    if clamp:
        outside = (s < 0) | (s >= in_size - 1)
        f = jnp.where(outside, jnp.float32(0), f)
        s = jnp.where(s < 0, 0, jnp.where(s >= in_size - 1, in_size - 1, s))
    return s, f


def _floor_frac(in_size, out_size, clamp):
    """(s [out] int32, f [out] float32) of the output indices 0..out_size-1 (`floor_frac`)."""
    in_size = jnp.asarray(in_size, jnp.int32)
    return floor_frac(_positions(in_size, out_size), in_size, clamp)


def _resize_virtual(fetch, in_hw, out_hw):
    """cv2.resize(INTER_LINEAR) of a virtual uint8 source of traced size in_hw to static out_hw.

    fetch(rows [n] int32, cols [m] int32) -> [n, m, C] uint8/int32 pixels of the virtual source
    (indices already within [0, in - 1]). Returns [out_h, out_w, C] uint8.
    """
    in_h, in_w = in_hw
    out_h, out_w = out_hw
    r0, r1, b0, b1 = resize_taps(in_h, out_h, clamp=False)
    q0, q1, a0, a1 = resize_taps(in_w, out_w, clamp=True)
    p00 = fetch(r0, q0).astype(jnp.int32)
    p01 = fetch(r0, q1).astype(jnp.int32)
    p10 = fetch(r1, q0).astype(jnp.int32)
    p11 = fetch(r1, q1).astype(jnp.int32)
    a0, a1 = a0[None, :, None], a1[None, :, None]
    b0, b1 = b0[:, None, None], b1[:, None, None]
    h0 = a0 * p00 + a1 * p01                                                 # HResizeLinear
    h1 = a0 * p10 + a1 * p11
    v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2      # VResizeLinearVec_32s8u
    # Exactly 2x down on both axes: OpenCV switches to INTER_AREA's fast path. Its taps are the
    # linear taps (position 2d + 0.5 -> pixels 2d, 2d + 1), only the rounding differs.
    area = (p00 + p01 + p10 + p11 + 2) >> 2
    is_area = (in_h == 2 * out_h) & (in_w == 2 * out_w)
    return jnp.clip(jnp.where(is_area, area, v), 0, 255).astype(jnp.uint8)


def _out_hw(out_size):
    if isinstance(out_size, (tuple, list)):
        out_h, out_w = (int(v) for v in out_size)
    else:
        out_h = out_w = int(out_size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f'device_crops: output size must be >= 1 px, got {out_size}')
    return out_h, out_w


def _check_frame(frame, where):
    if frame.ndim != 3 or frame.dtype != jnp.uint8:
        raise ValueError(f'{where}: frame must be a uint8 [Hp, Wp, C] array, got {frame.shape} '
                         f'{frame.dtype}')


def cv_resize_linear_u8(src, src_hw, out_size):
    """cv2.resize(src[:h, :w], (out_w, out_h), interpolation=INTER_LINEAR), byte-identical.

    src: [Hp, Wp, C] uint8, the real image in its top-left [h, w] corner (rest ignored).
    src_hw: (h, w) int32, traced allowed, 1 <= h <= Hp, 1 <= w <= Wp.
    out_size: static int (square) or (out_h, out_w).
    Returns [out_h, out_w, C] uint8.
    """
    src = jnp.asarray(src)
    _check_frame(src, 'cv_resize_linear_u8')
    src_hw = jnp.asarray(src_hw, jnp.int32)
    out_hw = _out_hw(out_size)
    return _resize_virtual(lambda r, c: src[r[:, None], c[None, :]], (src_hw[0], src_hw[1]),
                           out_hw)


# ------------------------------------------------------------------ exact float64 geometry in f32

def _split12(a):
    """a == hi + lo exactly, hi keeping the top 12 mantissa bits (products of parts are exact)."""
    bits = jax.lax.bitcast_convert_type(a, jnp.uint32) & jnp.uint32(0xFFFFF000)
    hi = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return hi, a - hi


def _two_product(a, b):
    """(p, e): p = fl(a b), p + e == a b exactly (Dekker; every partial product is exact)."""
    # The barrier keeps XLA/LLVM from contracting a * b into an fma with a later add (that
    # would use the exact product where the rounded p is meant).
    p = jax.lax.optimization_barrier(a * b)
    ah, al = _split12(a)
    bh, bl = _split12(b)
    e = (((ah * bh - p) + ah * bl) + al * bh) + al * bl
    return p, e


def _two_sum(a, b):
    """(s, e): s = fl(a + b), s + e == a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _check_factor(factor):
    factor = float(factor)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f'sample_target_device: factor must be a finite positive number, got '
                         f'{factor}')
    mant, _ = math.frexp(factor)
    if (mant * (1 << 12)) != int(mant * (1 << 12)):
        raise ValueError(f'sample_target_device: factor {factor} has more than 12 significant '
                         f'bits; its square is not exact in float32 (use e.g. 2, 4, 5, 2.5)')
    return factor


def crop_side(w, h, factor: float):
    """ceil(sqrt(w h) factor) exactly as Python computes it in float64, for float32 w, h > 0.

    w, h: [] float32 (traced). factor: static, at most 12 significant bits (2, 4, 5, 2.5, ...).
    Returns [] int32: the least n >= 1 with n**2 >= w h factor**2 (computed with error-free
    products; the float32 estimate is corrected by +-1).
    """
    factor = _check_factor(factor)
    w = jnp.asarray(w, jnp.float32)
    h = jnp.asarray(h, jnp.float32)
    p, e = _two_product(w, h)                              # w h = p + e
    t1, t1e = _two_product(p, jnp.float32(factor * factor))
    t_lo = t1e + e * jnp.float32(factor * factor)          # w h f^2 = t1 + t_lo (+ < 2^-46 rel)
    est = jnp.ceil(jnp.sqrt(p) * jnp.float32(factor)).astype(jnp.int32)

    def at_least(n):                                       # n^2 >= w h f^2, exactly
        m = n * n
        m_hi = ((m >> 12) << 12).astype(jnp.float32)
        m_lo = (m & 4095).astype(jnp.float32)
        return ((m_hi - t1) + m_lo) - t_lo >= 0

    n = jnp.where(at_least(est - 1), est - 1, jnp.where(at_least(est), est, est + 1))
    return jnp.maximum(n, 1)


def _round_half_even_sum(a, b, c):
    """Python round(a + b + c) (half to even) of the exact sum of three float32 values."""
    s, e1 = _two_sum(a, b)
    u, e2 = _two_sum(s, c)
    tail = e1 + e2
    fl = jnp.floor(u)
    half = (u - fl) == 0.5
    r = jnp.where(half & (tail > 0), fl + 1, jnp.where(half & (tail < 0), fl, jnp.round(u)))
    return r.astype(jnp.int32)


def _floor_sum(a, b):
    """floor(a + b) of the exact sum of two float32 values."""
    u, e = _two_sum(a, b)
    fl = jnp.floor(u)
    return jnp.where((u == fl) & (e < 0), fl - 1, fl).astype(jnp.int32)


# ------------------------------------------------------------------ the two crops

def crop_window_device(box_xywh, factor: float):
    """`tracking.crops.crop_window` under jit: (x1, y1, crop_sz) int32 scalars.

    box_xywh: [4] float32 (x, y, w, h) px. factor: static (see `crop_side`).
    crop_sz = ceil(sqrt(w h) factor); x1 = round(x + w/2 - crop_sz/2) half to even; same for y1.
    """
    box = jnp.asarray(box_xywh, jnp.float32)
    x, y, w, h = box[0], box[1], box[2], box[3]
    side = crop_side(w, h, factor)
    half = side.astype(jnp.float32) * 0.5
    x1 = _round_half_even_sum(x, 0.5 * w, -half)
    y1 = _round_half_even_sum(y, 0.5 * h, -half)
    return x1, y1, side


def sample_target_device(frame, frame_hw, box_xywh, factor: float, out_size: int):
    """`tracking.crops.sample_target` as a jittable function, byte-identical crop.

    frame: [Hp, Wp, C] uint8, the real frame in the top-left frame_hw = (H, W) int32 corner.
    box_xywh: [4] float32 px (traced). factor: static python float (e.g. 2, 4, 5).
    out_size: static output side.
    Returns (crop [out, out, C] uint8, resize_factor [] float32 = out / crop_sz,
    pad_mask [out, out] bool, True = padding: the host's mask as OpenCV's own float64 resize
    makes it; with IPP on (the wheel's default) the host differs in rare windows, see
    `pad_mask_device`).
    The window [x1, x1 + crop_sz) is zero outside the image, and, like the official code, the
    image's last column/row is zero too when the window reaches it (x1 + crop_sz >= W).
    """
    frame = jnp.asarray(frame)
    _check_frame(frame, 'sample_target_device')
    out_hw = _out_hw(out_size)
    frame_hw = jnp.asarray(frame_hw, jnp.int32)
    height, width = frame_hw[0], frame_hw[1]
    x1, y1, side = crop_window_device(box_xywh, factor)
    x2, y2 = x1 + side, y1 + side
    # The inside part of the window in frame coordinates (host: x2 - pad_right, +1 quirk).
    ix0, iy0 = jnp.maximum(x1, 0), jnp.maximum(y1, 0)
    ix1 = jnp.where(x2 >= width, width - 1, x2)
    iy1 = jnp.where(y2 >= height, height - 1, y2)
    hp, wp = frame.shape[:2]

    def fetch(rows, cols):
        ys, xs = y1 + rows, x1 + cols
        inside = (((ys >= iy0) & (ys < iy1))[:, None] & ((xs >= ix0) & (xs < ix1))[None, :])
        pix = frame[jnp.clip(ys, 0, hp - 1)[:, None], jnp.clip(xs, 0, wp - 1)[None, :]]
        return jnp.where(inside[..., None], pix, jnp.uint8(0))

    crop = _resize_virtual(fetch, (side, side), out_hw)
    mask = pad_mask_device(side, (iy0 - y1, iy1 - y1), (ix0 - x1, ix1 - x1), out_hw)
    return crop, jnp.float32(out_hw[1]) / side.astype(jnp.float32), mask


def pad_mask_device(side, rows_inside, cols_inside, out_size):
    """The official att_mask: cv2.resize(float64 mask, INTER_LINEAR) != 0, mask 1 = padding.

    side: [] int32 window side; rows_inside/cols_inside: ([] lo, [] hi) int32, the half-open
    window range holding image pixels (empty -> all padding). out_size: static.
    Reproduces OpenCV's own float64 path: an output pixel is padding iff a tap with a non-zero
    float weight (1 - f, f; column taps reset at the edges as for uint8) reads padding; exactly 2x
    (INTER_AREA fast) reads the 2x2 block. Returns [out_h, out_w] bool.
    """
    out_h, out_w = _out_hw(out_size)

    def axis(lo, hi, n_out, clamp):
        d = jnp.arange(n_out, dtype=jnp.int32)
        s, f = _floor_frac(side, n_out, clamp)
        i0 = jnp.clip(s, 0, side - 1)
        i1 = jnp.clip(s + 1, 0, side - 1)
        pad0 = (i0 < lo) | (i0 >= hi)
        pad1 = ((i1 < lo) | (i1 >= hi)) & (f != 0)
        area = (2 * d < lo) | (2 * d >= hi) | (2 * d + 1 < lo) | (2 * d + 1 >= hi)
        return pad0 | pad1, area

    rows, rows_area = axis(rows_inside[0], rows_inside[1], out_h, clamp=False)
    cols, cols_area = axis(cols_inside[0], cols_inside[1], out_w, clamp=True)
    is_area = (side == 2 * out_h) & (side == 2 * out_w)
    rows = jnp.where(is_area, rows_area, rows)
    cols = jnp.where(is_area, cols_area, cols)
    empty = (rows_inside[1] <= rows_inside[0]) | (cols_inside[1] <= cols_inside[0])
    return rows[:, None] | cols[None, :] | empty


def get_subwindow_device(frame, frame_hw, center_xy, model_size: int, original_size, avg_chans):
    """`tracking.subwindow.get_subwindow` as a jittable function, byte-identical.

    frame: [Hp, Wp, C] uint8, the real frame in the top-left frame_hw = (H, W) int32 corner.
    center_xy: [2] float32 (cx, cy) px (traced). model_size: static output side.
    original_size: [] int32 window side >= 1 (traced). avg_chans: [C] padding colour, float or
    uint8; truncated toward zero to uint8 as pysot's canvas assignment does (give the same float32
    values as the host call for identical bytes).
    Window: x0 = floor(cx - original_size / 2) (pysot's floor(cx - (s + 1)/2 + 0.5)), side
    original_size; pixels outside the frame take the padding colour; resized with cv2.resize
    INTER_LINEAR when model_size != original_size. Returns [model_size, model_size, C] uint8.
    """
    frame = jnp.asarray(frame)
    _check_frame(frame, 'get_subwindow_device')
    out_hw = _out_hw(model_size)
    frame_hw = jnp.asarray(frame_hw, jnp.int32)
    height, width = frame_hw[0], frame_hw[1]
    center = jnp.asarray(center_xy, jnp.float32)
    side = jnp.asarray(original_size, jnp.int32)
    half = side.astype(jnp.float32) * 0.5
    x0 = _floor_sum(center[0], -half)
    y0 = _floor_sum(center[1], -half)
    avg = jnp.asarray(avg_chans)
    pad = avg if avg.dtype == jnp.uint8 else jnp.trunc(avg.astype(jnp.float32)).astype(jnp.uint8)
    hp, wp = frame.shape[:2]

    def fetch(rows, cols):
        ys, xs = y0 + rows, x0 + cols
        inside = (((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :])
        pix = frame[jnp.clip(ys, 0, hp - 1)[:, None], jnp.clip(xs, 0, wp - 1)[None, :]]
        return jnp.where(inside[..., None], pix, pad)

    return _resize_virtual(fetch, (side, side), out_hw)
