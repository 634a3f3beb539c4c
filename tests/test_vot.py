"""Tests of tracking/eval/vot.py: region overlap, the reset protocol, A/R/EAO, result files."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SEQUENCES as SHARED_SEQUENCES, write_jpeg, write_text
from tracking.data.sequence import Sequence
from tracking.eval import runner, vot

REPO = Path(__file__).resolve().parents[1]
BAG = SHARED_SEQUENCES / 'vot' / 'bag'


# --- region overlap -----------------------------------------------------------------------------

def test_rect_rect_overlap():
    # exact: 10x10 boxes 5 px apart: 50 / (100 + 100 - 50).
    assert vot.region_overlap([0, 0, 10, 10], [5, 0, 10, 10], (100, 100),
                              'exact') == pytest.approx(1 / 3)
    # raster (C region library): corners 0..10 fill pixel columns/rows 0..10 (11 x 11 = 121);
    # the shifted box covers columns 5..15, so 6 x 11 = 66 shared: 66 / (121 + 121 - 66).
    assert vot.region_overlap([0, 0, 10, 10], [5, 0, 10, 10], (100, 100)) == pytest.approx(
        66 / 176)
    assert vot.region_overlap([3, 4, 10, 10], [3, 4, 10, 10], (100, 100)) == 1.0


def test_rotated_polygon_and_rect():
    diamond = [10, 0, 20, 10, 10, 20, 0, 10]   # a square rotated 45 deg, area 200
    assert vot.region_overlap(diamond, [0, 0, 20, 20], None, 'exact') == pytest.approx(0.5)
    # the same polygon given as its 4 corners and as a 4-value rect are the same region
    assert vot.region_overlap([0, 0, 20, 0, 20, 20, 0, 20], [0, 0, 20, 20], None) == 1.0
    # raster: close to the geometric value
    assert abs(vot.region_overlap(diamond, [0, 0, 20, 20], None) - 0.5) < 0.02
    # half of the diamond: the rect x in [0, 10] holds 100 of its 200 px^2; union 200 + 200 - 100
    assert vot.region_overlap(diamond, [0, 0, 10, 20], None, 'exact') == pytest.approx(1 / 3)


def test_overlap_is_clipped_to_image_bounds():
    # exact: the second box is cut to [5, 12] x [5, 12] = 49; shared [5, 10]^2 = 25.
    assert vot.region_overlap([0, 0, 10, 10], [5, 5, 10, 10], (12, 12),
                              'exact') == pytest.approx(25 / (100 + 49 - 25))
    # raster: pixels 0..10 (121) and 5..12 (8 x 8 = 64, the grid ends at column/row 12),
    # shared 5..10 (36).
    assert vot.region_overlap([0, 0, 10, 10], [5, 5, 10, 10], (12, 12)) == pytest.approx(
        36 / (121 + 64 - 36))
    # without bounds nothing is cut
    assert vot.region_overlap([0, 0, 10, 10], [5, 5, 10, 10], None,
                              'exact') == pytest.approx(25 / 175)


@pytest.mark.parametrize('method', ['raster', 'exact'])
def test_no_overlap_is_zero_and_codes_are_nan(method):
    assert vot.region_overlap([0, 0, 10, 10], [30, 30, 5, 5], (100, 100), method) == 0.0
    assert vot.region_overlap([0, 0, 10, 10], [10, 0, 10, 10], (100, 100), method) == 0.0
    assert vot.region_overlap([200, 0, 10, 10], [200, 0, 10, 10], (100, 100), method) == 0.0
    for code in (0, 1, 2, [2]):
        assert math.isnan(vot.region_overlap(code, [0, 0, 10, 10], (100, 100), method))
        assert math.isnan(vot.region_overlap([0, 0, 10, 10], code, (100, 100), method))
    # PySOT's region library: a region with a NaN value covers no pixel -> 0 (NaN if both)
    assert vot.region_overlap([np.nan, 0, 10, 10], [0, 0, 10, 10], None, method) == 0.0
    assert vot.region_overlap([0, 0, 10, 10], [np.nan] * 4, (100, 100), method) == 0.0
    assert math.isnan(vot.region_overlap([np.nan] * 4, [np.nan] * 4, (100, 100), method))


def test_init_box_from_polygon():
    # a rectangle's corners: s = 1, w = 10 + 1, centre (25, 20) -> x = 25 - (11 - 1) / 2
    np.testing.assert_allclose(vot.init_box_from_region([20, 15, 30, 15, 30, 25, 20, 25]),
                               [20, 15, 11, 11])
    # the diamond: edges 10*sqrt2 each -> 200 / 400 of its bbox, s = sqrt(0.5)
    s = math.sqrt(0.5)
    w = s * 20 + 1
    np.testing.assert_allclose(vot.init_box_from_region([10, 0, 20, 10, 10, 20, 0, 10]),
                               [10 - (w - 1) / 2, 10 - (w - 1) / 2, w, w])
    # x, y, w, h: centre x + w / 2 -> (x + 0.5, y + 0.5, w, h)
    np.testing.assert_allclose(vot.init_box_from_region([4, 6, 10, 8]), [4.5, 6.5, 10, 8])


# --- a scripted tracker on in-memory sequences --------------------------------------------------

W, H = 64, 48
GT_RECT = np.array([20.0, 15.0, 10.0, 10.0])
FAR = np.array([50.0, 1.0, 5.0, 5.0])          # shares nothing with GT_RECT
SHIFTED = GT_RECT + [5.0, 0, 0, 0]             # raster overlap 66 / 176 = 0.375 (see above)
HALF = 66 / 176


def _sequence(name, seq_id, length):
    frames = np.zeros((length, H, W, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(length)
    frames[:, 0, 0, 1] = seq_id
    return Sequence(name, frames, np.tile(GT_RECT, (length, 1)))


class ScriptedTracker:
    """Returns GT_RECT, or FAR / SHIFTED on the frames of `script[seq_id]`; logs every call."""

    def __init__(self, script):
        self.script, self.calls, self._seq = script, [], None

    def initialize(self, frame, box):
        self._seq = int(frame[0, 0, 1])
        self.calls.append(('init', self._seq, int(frame[0, 0, 0]), np.asarray(box).tolist()))

    def track(self, frame):
        index = int(frame[0, 0, 0])
        self.calls.append(('track', self._seq, index))
        action = self.script.get(self._seq, {}).get(index)
        return {'far': FAR, 'shift': SHIFTED}.get(action, GT_RECT).copy()


SCRIPT = {0: {6: 'far', 22: 'shift', 23: 'shift'},
          1: {15: 'shift', 16: 'shift', 17: 'shift', 18: 'shift', 19: 'shift'}}
SEQ_A, SEQ_B = _sequence('a', 0, 30), _sequence('b', 1, 25)


def _codes(records):
    return [r if vot.is_code(r) else 'box' for r in records]


def test_reset_protocol_codes_and_reinit():
    tracker = ScriptedTracker(SCRIPT)
    records, times = vot.run_supervised(tracker, SEQ_A)
    assert _codes(records) == [1] + ['box'] * 5 + [2, 0, 0, 0, 0, 1] + ['box'] * 18
    assert times.shape == (30,) and np.all(times[7:11] == 0)
    inits = [c for c in tracker.calls if c[0] == 'init']
    # re-initialised on frame 6 + 5 = 11 with the GT polygon's axis-aligned box (s = 1, +1 px)
    assert inits == [('init', 0, 0, [20, 15, 11, 11]), ('init', 0, 11, [20, 15, 11, 11])]
    tracked = [c[2] for c in tracker.calls if c[0] == 'track']
    assert tracked == list(range(1, 7)) + list(range(12, 30))   # frames 7..10 never shown
    np.testing.assert_array_equal(records[22], SHIFTED)


def test_reinit_moves_past_unusable_ground_truth():
    seq = _sequence('gap', 0, 16)
    polygons = vot.ground_truth_regions(seq)
    polygons[11] = np.nan
    seq.extra['polygons'] = polygons
    records, _ = vot.run_supervised(ScriptedTracker({0: {6: 'far'}}), seq)
    assert _codes(records) == [1] + ['box'] * 5 + [2, 0, 0, 0, 0, 0, 1] + ['box'] * 3


def test_accuracy_robustness_eao_hand_computed():
    tracker = ScriptedTracker(SCRIPT)
    per_seq = {}
    for seq in (SEQ_A, SEQ_B):
        records, _ = vot.run_supervised(tracker, seq)
        per_seq[seq.name] = vot.score_sequence(records, vot.ground_truth_regions(seq), (W, H))
    assert per_seq['a']['failures'] == [6] and per_seq['b']['failures'] == []
    # Burn-in: a ignores 0..9 (init), 10 (skipped), 11..20 (re-init) -> frames 21..29 count,
    # 22 and 23 are shifted; b ignores 0..9 -> frames 10..24 count, 15..19 shifted.
    ar = vot.accuracy_robustness(per_seq)
    assert ar['accuracy'] == pytest.approx((7 + 2 * HALF + 10 + 5 * HALF) / (9 + 15))
    assert ar['robustness'] == pytest.approx(100 * 1 / 55)
    assert ar['lost_number'] == 1 and ar['num_frames'] == 55

    # EAO segments (overlaps without burn-in; boxes are far from the (W-1, H-1) bounds):
    #  a0: frames 0..11 (failure at 6, re-init at 11): positions 1..5 are 1, the rest 0, and
    #      zero-padded to 30;
    #  a1: frames 11..29: positions 1..10 are 1, 11 and 12 are HALF, 13..18 are 1; NaN after;
    #  b : frames 0..24: positions 1..14 are 1, 15..19 HALF, 20..24 1; NaN after.
    def a0(n):
        return min(n, 5) / n

    def a1(n):
        return (min(n, 10) + HALF * len([k for k in (11, 12) if k <= n])
                + max(0, n - 12)) / n

    def b(n):
        return (min(n, 14) + HALF * max(0, min(n, 19) - 14) + max(0, n - 19)) / n

    curve = vot.vot_summary(per_seq, (10, 14))['eao_curve']
    assert len(curve) == 30 and curve[0] == 1
    for n in (9, 10, 11, 12, 13, 14):
        assert curve[n] == pytest.approx((a0(n) + a1(n) + b(n)) / 3, abs=1e-6)
    assert curve[20] == pytest.approx((a0(20) + b(20)) / 2, abs=1e-6)  # a1 ended at 18
    assert curve[25] == pytest.approx(a0(25), abs=1e-6)                # only a0 (zeros) left
    pysot = np.mean([(a0(n) + a1(n) + b(n)) / 3 for n in range(9, 14)])      # [10, 14] -> 9..13
    toolkit = np.mean([(a0(n) + a1(n) + b(n)) / 3 for n in range(10, 15)])   # 10..14
    assert vot.vot_summary(per_seq, (10, 14))['eao'] == pytest.approx(pysot, abs=1e-6)
    assert vot.vot_summary(per_seq, (10, 14), 'vot-toolkit')['eao'] == pytest.approx(toolkit,
                                                                                   abs=1e-6)


def test_eao_fragments_pysot_quirks():
    ones = np.ones(10)
    ones[0] = np.nan
    # a failure at 7: 7 + 5 > 10 starts no segment, the only segment is NaN-padded after 10
    fragments, weights = vot.eao_fragments([ones, np.ones(14)], [[7], []])
    assert fragments.shape == (2, 14)
    np.testing.assert_array_equal(fragments[0, :10], [0] + [1] * 9)
    assert np.isnan(fragments[0, 10:]).all() and weights[0] == pytest.approx(1.0)
    # a failure at 5: the segment after re-init 10 is empty (weight 0); the first one spans
    # frames 0..10, of which 0..9 exist: weight 10 / 11
    fragments, weights = vot.eao_fragments([ones], [[5]])
    np.testing.assert_allclose(weights, [10 / 11, 0.0])
    np.testing.assert_array_equal(fragments[0], [0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    assert vot.eao([1.0, 0.5, 0.25, 0.0], (2, 3)) == pytest.approx(0.375)
    assert vot.eao([1.0, 0.5, 0.25, 0.0], (2, 3), 'vot-toolkit') == pytest.approx(0.125)
    assert math.isnan(vot.eao([1.0, 0.5], (100, 356)))


def test_eao_of_hand_computed_overlaps():
    """A/R/EAO of two 12-frame sequences whose overlaps are counted by hand (raster pixels).

    GT is the rectangle (10, 10, 10, 10) in a 100 x 100 image: the region library fills pixels
    x = 10..20, y = 10..20 (both ends included), 11 x 11 = 121. The same box gives overlap 1;
    the box moved 5 px right (15..25) shares 6 x 11 = 66 pixels of a 176-pixel union: 0.375.
    A NaN result line covers no pixel: overlap 0 (PySOT), not an unknown frame.
    """
    gt = [10.0, 10.0, 10.0, 10.0]
    same, shifted = np.array(gt), np.array([15.0, 10.0, 10.0, 10.0])
    nan_box = np.full(4, np.nan)
    half = 66 / 176
    # A: failure at 5, re-initialised at 10 (5 + 5); B: no failure, a NaN line at frame 6.
    records_a = [1, same, same, same, shifted, 2, 0, 0, 0, 0, 1, same]
    records_b = [1] + [shifted] * 5 + [nan_box] + [shifted] * 5
    gt_regions = [gt] * 12
    scores = {'a': vot.score_sequence(records_a, gt_regions, (100, 100)),
              'b': vot.score_sequence(records_b, gt_regions, (100, 100))}
    assert scores['a']['failures'] == [5] and scores['b']['failures'] == []

    # Fragments by hand (position 0 = the init frame never counts):
    #   A1 frames 0..10, ended in a failure -> zero-padded: 1, 1, 1, 0.375, then 0;
    #   A2 frames 10..11, last segment -> NaN-padded: observed at length 1 only, value 1;
    #   B  frames 0..11 (no failure): 0.375 x 5, 0 (the NaN line), 0.375 x 5.
    a1 = [1.0, 1.0, 1.0, half] + [0.0] * 7
    b = [half] * 5 + [0.0] + [half] * 5
    curve = [1.0]
    for length in range(1, 12):
        means = [sum(a1[:length]) / length, sum(b[:length]) / length]
        if length == 1:
            means.append(1.0)
        curve.append(sum(means) / len(means))
    summary = vot.vot_summary(scores, (2, 12))     # pysot: curve[1 .. 11]
    np.testing.assert_allclose(summary['eao_curve'], curve, rtol=1e-6)
    assert summary['eao'] == pytest.approx(np.mean(curve[1:12]), rel=1e-6)
    assert not math.isnan(summary['eao'])
    # A: burn-in 10 after each init leaves only frames 10, 11 of B... minus frame 10's burn-in
    # of A; B's frames 10 and 11 (0.375 each) remain. R = 100 * 1 failure / 24 frames.
    assert summary['accuracy'] == pytest.approx(half)
    assert summary['robustness'] == pytest.approx(100 / 24) and summary['lost_number'] == 1


# --- the real bag sequence ----------------------------------------------------------------------

def _supersampled_iou(box, polygon, step=0.25):
    """IoU by counting sample points on a fine grid (an approximation independent of vot.py)."""
    xs = np.arange(0, 480, step) + step / 2
    ys = np.arange(0, 360, step) + step / 2
    gx, gy = np.meshgrid(xs, ys)
    x, y, w, h = box
    in_box = (gx >= x) & (gx <= x + w) & (gy >= y) & (gy <= y + h)
    corners = np.asarray(polygon).reshape(4, 2)
    signs = []
    for k in range(4):
        (ax, ay), (bx, by) = corners[k], corners[(k + 1) % 4]
        signs.append((bx - ax) * (gy - ay) - (by - ay) * (gx - ax) >= 0)
    in_poly = np.all(signs, axis=0) | ~np.any(signs, axis=0)
    return np.sum(in_box & in_poly) / np.sum(in_box | in_poly)


@pytest.mark.shared(BAG, what='VOT scripted tracker on the shared bag')
def test_real_bag_scripted_tracker():
    from tracking.data.benchmarks import load_benchmark
    seq = load_benchmark('vot', BAG)[0]
    polygons = seq.extra['polygons'].astype(np.float64)
    boxes = seq.boxes.astype(np.float64)

    class GtBox:
        def initialize(self, frame, box):
            self.init_frame = None

        def track(self, frame):
            self.index += 1
            return np.array([400.0, 10.0, 20.0, 20.0]) if self.index in (50, 120) else \
                boxes[self.index]

    tracker = GtBox()

    def read(sequence, i):
        tracker.index = i - 1
        return sequence.frame(i)

    records, _ = vot.run_supervised(tracker, seq, read_frame=read)
    score = vot.score_sequence(records, polygons, (480, 360))
    assert score['failures'] == [50, 120]
    codes = {i: r for i, r in enumerate(records) if vot.is_code(r)}
    assert codes == {0: 1, 50: 2, 51: 0, 52: 0, 53: 0, 54: 0, 55: 1,
                     120: 2, 121: 0, 122: 0, 123: 0, 124: 0, 125: 1}

    # Burn-in, pooled mean and the EAO segments written out as plain loops; the per-frame
    # overlaps come from region_overlap (checked against a supersampled IoU). The EAO check
    # with hand-computed overlaps is test_eao_of_hand_computed_overlaps.
    raster = {i: vot.region_overlap(boxes[i], polygons[i], (480, 360))
              for i in range(196) if i not in codes}
    for i in (1, 30, 100, 195):
        assert raster[i] == pytest.approx(_supersampled_iou(boxes[i], polygons[i]), abs=0.03)
    ignored = set(range(0, 10)) | set(range(55, 65)) | set(range(125, 135)) | set(codes)
    accuracy = np.mean([v for i, v in raster.items() if i not in ignored])
    assert score['accuracy'] == pytest.approx(accuracy, abs=1e-12)
    ar = vot.accuracy_robustness({'bag': score})
    assert ar['robustness'] == pytest.approx(100 * 2 / 196)

    tight = {i: vot.region_overlap(boxes[i], polygons[i], (479, 359)) for i in raster}
    segments = []   # (values at positions 0.., ended in failure)
    for start, stop, failed in ((0, 55, True), (55, 125, True), (125, 195, False)):
        segments.append(([tight.get(i, 0.0) if i != start else 0.0
                          for i in range(start, stop + 1)], failed))
    curve = [1.0]
    for n in range(1, 196):
        means = []
        for values, failed in segments:
            if n < len(values) or failed:
                padded = values + [0.0] * 196
                means.append(sum(padded[1:n + 1]) / n)
        curve.append(np.mean(means))
    expected = np.mean(curve[99:356])   # VOT2018 [100, 356], pysot: 99..195 exist
    summary = vot.vot_summary({'bag': score}, (100, 356))
    assert summary['eao'] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(summary['eao_curve'], curve, atol=1e-6)


# --- result files, restart, command line --------------------------------------------------------

def test_result_file_round_trip(tmp_path):
    records = [1, np.array([312.64205, 146.8878, 106.13, 96.4]), 2, 0, 0,
               np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])]
    path = vot.write_records(tmp_path, 'trk', 'bag', records, np.arange(6) / 10)
    assert path == tmp_path / 'trk' / 'baseline' / 'bag' / 'bag_001.txt'
    assert path.read_text().splitlines() == [
        '1', '312.6421,146.8878,106.1300,96.4000', '2', '0', '0',
        '1.0000,2.0000,3.0000,4.0000,5.0000,6.0000,7.0000,8.0000']
    assert vot.time_path(path).read_text().splitlines()[1] == '0.100000'
    back = vot.read_records(path)
    assert _codes(back) == [1, 'box', 2, 0, 0, 'box']
    np.testing.assert_allclose(back[1], [312.6421, 146.8878, 106.13, 96.4])
    assert vot.find_result_file(tmp_path / 'trk', 'bag') == path
    assert vot.is_done(tmp_path, 'trk', 'bag', 6) and not vot.is_done(tmp_path, 'trk', 'bag', 7)
    # other trackers' raw files: tabs/spaces; NaN lines stay numbers, as PySOT reads them
    parsed = vot.parse_records('1\n1\t2\t3\t4\nnan,nan,nan,nan\n\n')
    assert _codes(parsed) == [1, 'box', 'box'] and np.isnan(parsed[2]).all()
    with pytest.raises(ValueError, match='x.txt, line 2'):
        vot.parse_records('1\n1,2,3\n', 'x.txt')


def test_runner_restart_skips_finished_sequences(tmp_path):
    made = []

    def factory():
        made.append(ScriptedTracker(SCRIPT))
        return made[-1]

    per_seq, summary, failures = runner.evaluate_tracker(factory, [SEQ_A, SEQ_B], 'vot2018',
                                                         str(tmp_path), 't', progress=False)
    assert failures == [] and len(made) == 1 and set(per_seq) == {'a', 'b'}
    assert summary['lost_number'] == 1 and summary['eao_interval'] == [100, 356]
    again = runner.evaluate_tracker(factory, [SEQ_A, SEQ_B], 'vot2018', str(tmp_path), 't',
                                    progress=False)
    assert len(made) == 1 and again[1]['accuracy'] == pytest.approx(summary['accuracy'])
    truncated = vot.result_path(tmp_path, 't', 'b')
    truncated.write_text('1\n')
    runner.evaluate_tracker(factory, [SEQ_A, SEQ_B], 'vot2016', str(tmp_path), 't',
                            progress=False)
    assert len(made) == 2 and [c[1] for c in made[1].calls if c[0] == 'init'] == [1]
    assert len(truncated.read_text().splitlines()) == 25
    scored = runner.score_results([str(tmp_path / 't')], [SEQ_A, SEQ_B], 'vot')
    assert scored['t'][1]['accuracy'] == pytest.approx(summary['accuracy'])


def _eval_cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'eval.py'), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_static_baseline_on_tiny_vot_folder(tmp_path):
    # 32 x 24 frames; GT a 4 x 4 square moving 1 px right per frame (x 2 + t .. 6 + t). The
    # static box from frame 0 is (2, 10, 5, 5) (s = 1, +1 px), x 2..7: at frame 5 the GT starts
    # at x = 7, touching only, overlap 0 -> failure; re-init at 10 on (12, 10, 5, 5), x 12..17;
    # failure at 15 (GT from x = 17); 15 + 5 = 20 is past the end: 16..19 are skipped.
    root = tmp_path / 'vot'
    lines = []
    for t in range(20):
        write_jpeg(root / 'mover' / 'color' / f'{t + 1:08d}.jpg', level=10 * t)
        x0, x1 = 2 + t, 6 + t
        lines.append(f'{x0},10,{x1},10,{x1},14,{x0},14')
    write_text(root / 'mover' / 'groundtruth.txt', lines)
    write_text(root / 'list.txt', ['mover'])
    out = tmp_path / 'out'
    proc = _eval_cli('--baseline', 'static', '--benchmark', 'vot2018', '--root', str(root),
                     '--out', str(out), '--noprogress')
    assert proc.returncode == 0, proc.stderr
    result = out / 'results' / 'VOT2018' / 'static' / 'baseline' / 'mover' / 'mover_001.txt'
    got = result.read_text().splitlines()
    assert [g if ',' not in g else 'box' for g in got] == (
        ['1'] + ['box'] * 4 + ['2', '0', '0', '0', '0', '1'] + ['box'] * 4 + ['2'] + ['0'] * 4)
    assert got[11] == '12.0000,10.0000,5.0000,5.0000'
    summary = json.loads((out / 'metrics.json').read_text())['summaries']['static']
    assert summary['lost_number'] == 2 and summary['robustness'] == pytest.approx(10.0)
    assert summary['accuracy'] is None        # every frame is inside a burn-in window
    # the curve (20 long) ends before VOT2018's interval [100, 356]: EAO is NaN -> null
    assert summary['eao'] is None and len(summary['eao_curve']) == 20
    assert summary['eao_curve'][0] == 1.0 and 0.0 < summary['eao_curve'][5] < 1.0
    assert 'EAO' in proc.stdout and 'static' in proc.stdout

    scored = _eval_cli('--benchmark', 'vot2018', '--root', str(root), '--results',
                       str(result.parents[2]), '--out', str(tmp_path / 'score'))
    assert scored.returncode == 0, scored.stderr
    rescored = json.loads((tmp_path / 'score' / 'metrics.json').read_text())
    assert rescored['summaries']['static'] == summary
