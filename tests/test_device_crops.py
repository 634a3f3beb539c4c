"""tracking/device_crops.py: jitted crops byte-identical to the host crops (cv2 5.0 INTER_LINEAR).

Every comparison is exact (np.array_equal on uint8). The random tests run thousands of boxes in
one jitted vmap call per setting and count the cases; see docs/architecture.md (device crops).
"""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tracking import device_crops as dc
from tracking.crops import crop_window, sample_target
from tracking.subwindow import context_size, get_subwindow

from helpers import SEQUENCES

HP, WP = 40, 48                     # padded frame of the random tests
FRAME_HWS = [(1, 1), (1, 9), (7, 1), (2, 3), (HP, WP), (33, 47), (40, 17), (21, 30)]


@pytest.fixture(autouse=True)
def _opencv_paths():
    """The paths these tests pin down: IPP's inexact uint8 resize off (the default)."""
    assert not cv2.ipp.useIPP_NotExact()
    yield


@pytest.fixture(scope='module')
def padded_frame():
    return np.random.default_rng(0).integers(1, 256, (HP, WP, 3), dtype=np.uint8)


def _cv_table(in_size, out_size, clamp):
    """resize.cpp's coefficient table, evaluated as OpenCV does (double, then float32 ops)."""
    scale = 1.0 / (out_size / in_size)
    f = ((np.arange(out_size) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f)
    f = (f - s).astype(np.float32)
    s = s.astype(np.int64)
    if clamp:
        f = np.where((s < 0) | (s >= in_size - 1), np.float32(0), f)
        s = np.clip(s, 0, in_size - 1)
    c0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    c1 = np.rint(f * np.float32(2048)).astype(np.int64)
    return np.stack([np.clip(s, 0, in_size - 1), np.clip(s + 1, 0, in_size - 1), c0, c1])


@pytest.mark.parametrize('out_size', [1, 16, 127, 255])
def test_resize_taps_match_opencv_table(out_size):
    """Every source size 1..1200 and some large ones: positions, clamping, coefficients."""
    in_sizes = np.concatenate([np.arange(1, 1201), [4093, 9999, (1 << 23) // (2 * out_size) - 1]])
    for clamp in (True, False):
        got = np.asarray(jax.jit(jax.vmap(lambda n: jnp.stack(dc.resize_taps(n, out_size, clamp))))(
            in_sizes.astype(np.int32)))
        for k, n in enumerate(in_sizes):
            np.testing.assert_array_equal(got[k], _cv_table(int(n), out_size, clamp),
                                          err_msg=f'in {n} out {out_size} clamp {clamp}')


def test_div_rn32_is_correctly_rounded():
    rng = np.random.default_rng(3)
    num = np.concatenate([rng.integers(-(1 << 24) + 1, 1 << 24, 100_000),
                          rng.integers(-3000, 3000, 100_000), [0, 1, -1, 11057]]).astype(np.int32)
    den = np.concatenate([rng.integers(1, 1 << 12, 200_000), [1, 4095, 7, 254]]).astype(np.int32)
    got = np.asarray(jax.jit(dc.div_rn32)(num, den))
    np.testing.assert_array_equal(got, num.astype(np.float32) / den.astype(np.float32))


def test_cv_resize_linear_u8_matches_cv2(padded_frame):
    """Down/up-scaling, exact 2x (INTER_AREA path), integer factors, same size, 1-px sources."""
    rng = np.random.default_rng(1)
    tried = 0
    for out_hw in [(16, 16), (7, 11), (1, 1)]:
        hws = rng.integers(1, [HP + 1, WP + 1], (400, 2))
        specials = [(2 * out_hw[0], 2 * out_hw[1]), out_hw, (1, 1), (HP, WP),
                    (3 * out_hw[0], 3 * out_hw[1]), (2 * out_hw[0], out_hw[1])]
        specials = [hw for hw in specials if hw[0] <= HP and hw[1] <= WP]
        hws = np.concatenate([np.array(specials), hws]).astype(np.int32)
        got = np.asarray(jax.jit(jax.vmap(lambda hw: dc.cv_resize_linear_u8(
            padded_frame, hw, out_hw)))(hws))
        for k, (h, w) in enumerate(hws):
            want = cv2.resize(padded_frame[:h, :w], out_hw[::-1], interpolation=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(got[k], want, err_msg=f'src {h}x{w} -> {out_hw}')
        tried += len(hws)
    assert tried > 1200


def _random_boxes(rng, n, factor, out_size):
    """Boxes in, partly and wholly outside the frames; integer boxes; exact-2x and same-size."""
    x = rng.uniform(-40, WP + 20, n)
    y = rng.uniform(-40, HP + 20, n)
    top = np.log(6 * out_size / factor)                                 # sides up to ~6 x out
    w = np.exp(rng.uniform(np.log(0.2), top, n))
    h = np.exp(rng.uniform(np.log(0.2), top, n))
    boxes = np.stack([x, y, w, h], 1).astype(np.float32)
    q = n // 8
    boxes[:q] = np.round(boxes[:q])                                    # integer GT-style boxes
    boxes[:q, 2:] = np.maximum(boxes[:q, 2:], 1)
    boxes[q:2 * q, 2:] = np.float32(2 * out_size / factor)             # crop side == 2 * out
    boxes[2 * q:3 * q, 2:] = np.float32(out_size / factor)             # crop side == out
    boxes[3 * q:3 * q + 8, :2] = [[-500, -500], [500, 500], [-500, 10], [10, 500]] * 2
    return boxes


@pytest.mark.parametrize('factor, out_size', [(2.0, 16), (4.0, 23), (5.0, 9)])
def test_sample_target_device_random_boxes(padded_frame, factor, out_size):
    rng = np.random.default_rng(int(factor * 100 + out_size))
    n = 3000
    boxes = _random_boxes(rng, n, factor, out_size)
    hws = np.array(FRAME_HWS, np.int32)[rng.integers(0, len(FRAME_HWS), n)]
    run = jax.jit(jax.vmap(lambda b, hw: dc.sample_target_device(padded_frame, hw, b, factor,
                                                                 out_size)))
    crops_, factors, masks = (np.asarray(a) for a in run(boxes, hws))
    sides, two_x, padded = [], 0, 0
    use_ipp = cv2.ipp.useIPP()
    try:
        for k in range(n):
            frame = padded_frame[:hws[k][0], :hws[k][1]]
            box = boxes[k].astype(np.float64)
            want, want_factor, _ = sample_target(frame, box, factor, out_size)
            np.testing.assert_array_equal(crops_[k], want, err_msg=f'box {box} frame {hws[k]}')
            assert factors[k] == np.float32(want_factor)
            cv2.ipp.setUseIPP(False)   # the mask's float64 resize: OpenCV's own path (see doc)
            _, _, want_mask = sample_target(frame, box, factor, out_size)
            cv2.ipp.setUseIPP(use_ipp)
            np.testing.assert_array_equal(masks[k], want_mask, err_msg=f'mask, box {box}')
            x1, y1, side = crop_window(box, factor)
            sides.append(side)
            two_x += side == 2 * out_size
            padded += want_mask.any()
    finally:
        cv2.ipp.setUseIPP(use_ipp)
    sides = np.array(sides)
    # The settings really cover up- and down-scaling, exact 2x, same size and padding.
    assert (sides < out_size).sum() > 100 and (sides > 2 * out_size).sum() > 100
    assert two_x > 100 and (sides == out_size).sum() > 100 and padded > 500


@pytest.mark.parametrize('model_size', [15, 16])
def test_get_subwindow_device_random_windows(padded_frame, model_size):
    rng = np.random.default_rng(model_size)
    n = 3000
    centers = np.stack([rng.uniform(-30, WP + 30, n), rng.uniform(-30, HP + 30, n)], 1)
    centers = centers.astype(np.float32)
    centers[: n // 4] = np.round(centers[: n // 4] * 2) / 2                  # .0 and .5 centres
    sides = rng.integers(1, 100, n).astype(np.int32)
    sides[:200] = 2 * model_size
    sides[200:400] = model_size
    sides[400:500] = 3 * model_size
    avg = rng.uniform(0, 255.9, (n, 3)).astype(np.float32)
    hws = np.array(FRAME_HWS, np.int32)[rng.integers(0, len(FRAME_HWS), n)]
    run = jax.jit(jax.vmap(lambda c, s, a, hw: dc.get_subwindow_device(
        padded_frame, hw, c, model_size, s, a)))
    got = np.asarray(run(centers, sides, avg, hws))
    for k in range(n):
        frame = padded_frame[:hws[k][0], :hws[k][1]]
        want = get_subwindow(frame, centers[k].astype(np.float64), model_size, int(sides[k]),
                             avg[k].astype(np.float64))
        np.testing.assert_array_equal(got[k], want, err_msg=f'centre {centers[k]} side '
                                                            f'{sides[k]} frame {hws[k]}')
    assert (sides < model_size).sum() > 100 and (sides > 2 * model_size).sum() > 100


def test_crop_window_exact_near_integer_sides_and_half_origins():
    """float32 boxes whose sqrt(w h) factor is an integer or one ulp away, and .5 origins."""
    rows = []
    for factor in (2.0, 4.0, 5.0, 2.5):
        for k in (1, 3, 7, 40, 129, 1000, 2897, 4097):
            side = np.float32(k / factor)
            for w in (side, np.nextafter(side, np.float32(0)), np.nextafter(side, np.float32(1e9))):
                for h in (side, np.nextafter(side, np.float32(1e9))):
                    for x in (np.float32(10.25), np.float32(-3.5), np.float32(7.0)):
                        rows.append((factor, x, np.float32(1.5), w, h))
    # origins exactly half-way: x + w/2 - side/2 = m + 0.5 (ties to even), both parities
    for x in (np.float32(7.5), np.float32(8.5), np.float32(-0.5), np.float32(1e4 + 0.5)):
        rows.append((2.0, x, x, np.float32(10), np.float32(10)))
        rows.append((2.0, x, x, np.float32(3), np.float32(3)))
    got = {}
    for factor in sorted({r[0] for r in rows}):
        sel = [r for r in rows if r[0] == factor]
        boxes = np.array([r[1:] for r in sel], np.float32)
        out = jax.jit(jax.vmap(lambda b: jnp.stack(dc.crop_window_device(b, factor))))(boxes)
        for r, o in zip(sel, np.asarray(out)):
            got[r] = o
    mismatches = [(r, got[r], crop_window(np.array(r[1:], np.float64), r[0])) for r in rows
                  if tuple(got[r]) != crop_window(np.array(r[1:], np.float64), r[0])]
    assert not mismatches, mismatches[:5]


def test_factor_with_inexact_square_is_refused():
    with pytest.raises(ValueError, match='significant bits'):
        dc.crop_side(jnp.float32(3), jnp.float32(4), 1 / 3)


def test_jit_and_vmap_static_shapes(padded_frame):
    traces = []

    def crop(box, hw):
        traces.append(1)
        return dc.sample_target_device(padded_frame, hw, box, 4.0, 32)

    run = jax.jit(crop)
    hw = np.array([HP, WP], np.int32)
    for box in ([3.0, 4.0, 5.0, 6.0], [10.5, 2.0, 30.0, 1.0], [-9.0, 50.0, 0.5, 0.5]):
        out, factor, mask = run(np.array(box, np.float32), hw)
        assert out.shape == (32, 32, 3) and out.dtype == jnp.uint8
        assert factor.shape == () and mask.shape == (32, 32) and mask.dtype == jnp.bool_
    assert len(traces) == 1                  # one compilation for every box / crop side
    sub = jax.jit(jax.vmap(lambda c, s: dc.get_subwindow_device(padded_frame, hw, c, 24, s,
                                                                jnp.zeros(3))))
    out = sub(np.zeros((5, 2), np.float32), np.arange(1, 6, dtype=np.int32))
    assert out.shape == (5, 24, 24, 3) and out.dtype == jnp.uint8
    batched = jax.jit(jax.vmap(dc.cv_resize_linear_u8, in_axes=(0, 0, None)), static_argnums=2)
    out = batched(np.stack([padded_frame] * 2), np.array([[3, 4], [HP, WP]], np.int32), (5, 6))
    assert out.shape == (2, 5, 6, 3)


def _read_boxes(path):
    lines = path.read_text().split()
    return np.array([[float(v) for v in line.split(',')] for line in lines], np.float64) \
        if ',' in lines[0] else np.loadtxt(path)


def _load_sequence(name, frame_step):
    from tracking.boxes import polygon_to_xywh
    from tracking.images import load_image
    root = SEQUENCES / name
    if name.startswith('otb'):
        paths = sorted((root / 'img').glob('*.jpg'))
        gt = _read_boxes(root / 'groundtruth_rect.txt')
    else:
        paths = sorted(root.glob('*.jpg'))
        gt = _read_boxes(root / 'groundtruth.txt')
        gt = polygon_to_xywh(gt) if gt.shape[1] == 8 else gt
    idx = list(range(0, len(paths), frame_step))
    return np.stack([load_image(paths[i]) for i in idx]), gt[idx].astype(np.float32)


REAL = [('otb/Crossing', 8), ('vot/bag', 14)]


def test_real_sequences_both_crops(require_shared):
    """Crossing and bag frames with their GT boxes (and the boxes pushed to each frame edge):
    GRM's template (factor 2, 128) and search (factor 4, 256) crops, pysot's 127 and 255 crops.
    Both sequences share one padded frame shape, so each crop compiles once."""
    require_shared(*(SEQUENCES / name for name, _ in REAL), what='device crops on real frames')
    frames, hws, boxes, names = [], [], [], []
    for name, step in REAL:
        seq_frames, seq_boxes = _load_sequence(name, step)
        h, w = seq_frames.shape[1:3]
        # GT boxes, then the same boxes pushed against the four frame edges (padding each side)
        for dx, dy in [(0, 0), (-w / 2, 0), (w / 2, 0), (0, -h / 2), (0, h / 2)]:
            frames += list(seq_frames)
            hws += [(h, w)] * len(seq_frames)
            boxes.append(seq_boxes + np.array([dx, dy, 0, 0], np.float32))
            names += [name] * len(seq_frames)
    hp, wp = np.max(hws, 0)
    padded = np.zeros((len(frames), hp, wp, 3), np.uint8)
    for k, f in enumerate(frames):
        padded[k, :f.shape[0], :f.shape[1]] = f
    hws, boxes = np.array(hws, np.int32), np.concatenate(boxes)
    tried = 0
    for factor, out_size in [(2.0, 128), (4.0, 256)]:
        run = jax.jit(jax.vmap(lambda f, hw, b: dc.sample_target_device(f, hw, b, factor,
                                                                        out_size)[0]))
        got = np.asarray(run(padded, hws, boxes))
        for k, b in enumerate(boxes):
            want = sample_target(frames[k], b.astype(np.float64), factor, out_size)[0]
            np.testing.assert_array_equal(got[k], want, err_msg=f'{names[k]} box {b} {factor}')
            tried += 1
    # pysot: centre x + (w - 1)/2, side round(context_size) (127) and round(s_z 255/127) (255)
    centers = boxes[:, :2] + (boxes[:, 2:] - 1) / 2
    s_z = context_size(boxes[:, 2].astype(np.float64), boxes[:, 3].astype(np.float64))
    avgs = np.stack([f.reshape(-1, 3).mean(0) for f in frames]).astype(np.float32)
    for model_size, sides in [(127, np.round(s_z)), (255, np.round(s_z * 255 / 127))]:
        sides = np.maximum(sides, 1).astype(np.int32)
        run = jax.jit(jax.vmap(lambda f, hw, c, s, a: dc.get_subwindow_device(
            f, hw, c, model_size, s, a)))
        got = np.asarray(run(padded, hws, centers, sides, avgs))
        for k in range(len(boxes)):
            want = get_subwindow(frames[k], centers[k].astype(np.float64), model_size,
                                 int(sides[k]), avgs[k].astype(np.float64))
            np.testing.assert_array_equal(got[k], want, err_msg=f'{names[k]} centre {centers[k]}')
            tried += 1
    assert tried == 4 * len(boxes) == 4 * 5 * (15 + 14)
