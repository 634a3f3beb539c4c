"""Each scoring rule that differs between toolkits, on a tiny case where the rules disagree.

Expected numbers are worked out by hand from the toolkit's rule (comments give the arithmetic),
never by calling the function under test. References: PySOT `toolkit/utils/statistics.py` and
`toolkit/evaluation/ope_benchmark.py`; OTB `calcSeqErrRobust`; LaSOT / TNL2K
`utils/calc_seq_err_robust.m`, `eval_tracker.m`, `plot_draw_save.m`; TrackingNet devkit
`metrics.py`; PySOT's C region library for VOT.
"""
import math

import numpy as np
import pytest

from helpers import write_text
from tracking.data.benchmarks import read_lasot_sequence, read_uav123_sequence
from tracking.data.sequence import Sequence
from tracking.eval import metrics, results, runner, vot

# 21 success thresholds 0, 0.05, ..., 1 (index 10 = 0.5); precision at index 20 = 20 px.
# IoU must be > the threshold, so even IoU 1 fails at 1.0: a perfect frame scores AUC 20 / 21.
T05 = 10
PERFECT = 20 / 21


def _lasot_folder(root, lines, absent=None):
    """A LaSOT sequence folder (no images: the reader builds the frame paths)."""
    folder = root / 'cat-1'
    write_text(folder / 'groundtruth.txt', lines)
    flags = ','.join('1' if a else '0' for a in (absent or [False] * len(lines)))
    write_text(folder / 'full_occlusion.txt', [flags])
    write_text(folder / 'out_of_view.txt', [','.join('0' * len(lines))])
    return folder


# --- 1. float64 ground truth ------------------------------------------------------------------

def test_readers_and_sequence_keep_float64(tmp_path):
    seq = read_lasot_sequence(_lasot_folder(tmp_path, ['0.7,5,10,10', '0.1,5,10.1,10']))
    assert seq.boxes.dtype == np.float64 and seq.init_box.dtype == np.float64
    assert seq.boxes[1, 0] == 0.1 and seq.boxes[1, 2] == 10.1    # the values as written
    assert Sequence('s', [0], np.float32([[1, 2, 3, 4]])).boxes.dtype == np.float64
    parsed = results.parse_boxes('20.7,5,10,10\n')
    assert parsed.dtype == np.float64 and parsed[0, 0] == 20.7


def test_centre_error_of_exactly_20_px_is_a_hit(tmp_path):
    # GT frame 1 x = 0.7, result x = 20.7, same size: centre error 20.7 - 0.7 = 20 px, which is
    # <= 20 (float64 gives exactly 20.0). Frame 0 is the GT -> P@20 = 2 / 2 = 1. A float32 GT
    # (0.699999988) would make it 20.0000000119 px, a miss (P@20 = 0.5).
    seq = read_lasot_sequence(_lasot_folder(tmp_path, ['0.7,5,10,10', '0.7,5,10,10']))
    pred = results.parse_boxes('0.7,5,10,10\n20.7,5,10,10\n')
    out = metrics.ope_sequence(pred, seq.boxes, seq.visible)
    assert out['precision_curve'][20] == 1.0 and out['precision_curve'][19] == 0.5


def test_iou_of_exactly_one_half_fails_at_0_5(tmp_path):
    # GT (0.1, 5, 10.1, 10), result (0.1, 5, 20.2, 10): intersection 10.1 x 10, union 20.2 x 10,
    # IoU 0.5 exactly, not > 0.5. Frames: 0 (the GT, IoU 1) and 1 -> success(0.5) = 1 / 2,
    # success(0.45) = 2 / 2. A float32 GT gives 0.50000002 and success(0.5) = 1.
    seq = read_lasot_sequence(_lasot_folder(tmp_path, ['0.1,5,10.1,10', '0.1,5,10.1,10']))
    pred = results.parse_boxes('0.1,5,10.1,10\n0.1,5,20.2,10\n')
    out = metrics.ope_sequence(pred, seq.boxes, seq.visible)
    assert out['success_curve'][T05] == 0.5 and out['success_curve'][T05 - 1] == 1.0


# --- 2. which GT rows are valid -----------------------------------------------------------------

GT_AT_LEFT_EDGE = np.array([[5.0, 5, 10, 10], [0.0, 5, 10, 10]])   # frame 1 touches x = 0


def test_gt_at_the_left_edge_pysot_keeps_it():
    # PySOT success_overlap: valid = w > 0 and h > 0 (x, y not tested) -> both frames IoU 1:
    # AUC 20 / 21. Centre of frame 1 = (4.5, 9.5) > 0: a normal frame.
    out = metrics.ope_sequence(GT_AT_LEFT_EDGE, GT_AT_LEFT_EDGE)
    assert out['auc'] == pytest.approx(PERFECT) and out['precision'] == 1.0


def test_gt_at_the_left_edge_matlab_drops_it():
    # OTB/LaSOT MATLAB: valid = all of x, y, w, h > 0 -> frame 1 overlap -1 (fails every
    # threshold), centre error -1 (a hit at every threshold): AUC = 1 / 2 x 20 / 21.
    out = metrics.ope_sequence(GT_AT_LEFT_EDGE, GT_AT_LEFT_EDGE, rules='matlab')
    assert out['auc'] == pytest.approx(PERFECT / 2) and out['precision'] == pytest.approx(1.0)


# --- 3. UAV123 NaN rows and NfS lost frames are scored (PySOT has no absent frames there) --------

def test_uav123_nan_row_follows_pysot_quirk(tmp_path):
    write_text(tmp_path / 'anno' / 'UAV123' / 'car9.txt',
               ['10,10,20,20', 'NaN,NaN,NaN,NaN', '12,10,20,20'])
    seq = read_uav123_sequence(tmp_path, 'car9')
    assert seq.visible.tolist() == [True, False, True]      # the reader's flag stays ...
    pred = np.array([[10.0, 10, 20, 20], [50, 50, 20, 20], [12, 10, 20, 20]])
    per_sequence, summary, failures, _ = runner.score_sequences(lambda s: pred, [seq], 'uav123')
    # ... but is not absence: the NaN row gets IoU -1 (fails) and distance -1 (a hit), so
    # AUC = 2 / 3 x 20 / 21 and P@20 = NormP@0.2 = 3 / 3.
    assert not failures
    assert summary['auc'] == pytest.approx(2 / 3 * PERFECT)
    assert summary['precision'] == 1.0 and summary['norm_precision'] == 1.0
    # LaSOT's rule (frame dropped, denominator 3) would give 2 / 3 for the precisions.
    lasot = metrics.ope_sequence(pred, seq.boxes, seq.visible)
    assert lasot['precision'] == pytest.approx(2 / 3)


def test_nfs_lost_frames_are_scored():
    gt = np.array([[10.0, 10, 20, 20], [10, 10, 20, 20], [10, 10, 20, 20]])
    pred = gt.copy()
    pred[1] = [100, 100, 20, 20]
    inputs = {'s': {'pred': pred, 'gt': gt, 'visible': np.array([True, False, True])}}
    # every frame counts: frame 1 (90 * sqrt(2) px away, IoU 0) misses -> AUC 2 / 3 x 20 / 21,
    # P@20 2 / 3. (Absence would give the same here; the NaN-row case below tells them apart.)
    _, summary = metrics.evaluate('nfs', inputs)
    assert summary['auc'] == pytest.approx(2 / 3 * PERFECT)
    assert summary['precision'] == pytest.approx(2 / 3)
    frame1_gt_nan = {'s': {'pred': pred, 'gt': np.vstack([gt[:1], [[np.nan] * 4], gt[2:]]),
                           'visible': np.array([True, False, True])}}
    _, summary = metrics.evaluate('nfs', frame1_gt_nan)
    assert summary['precision'] == 1.0       # NaN GT row: distance -1, a hit (not dropped)


# --- LaSOT: PySOT (default) vs the official MATLAB toolkit ----------------------------------------

def test_lasot_matlab_repairs_predictions_and_replaces_frame_0():
    gt = np.array([[10.0, 10, 10, 10]] * 4)
    pred = np.array([[30.0, 30, 10, 10],       # frame 0 differs from the GT
                     [10, 10, 10, 10],
                     [np.nan, np.nan, np.nan, np.nan],   # lost
                     [10, 10, 0, 10]])                   # zero width
    # PySOT: frame 0 used as written (IoU 0, error 20 * sqrt(2) = 28.3 px), frame 1 hits,
    # frames 2 and 3 fail (NaN; zero width -> IoU 0, centre (9.5, 14.5) is 5.0 px away: a hit).
    pysot = metrics.ope_sequence(pred, gt)
    assert pysot['success_curve'][0] == pytest.approx(1 / 4)
    assert pysot['precision'] == pytest.approx(2 / 4)
    # MATLAB: frame 0 := GT; frames 2 and 3 take frame 1's box -> every frame IoU 1, error 0.
    matlab = metrics.ope_sequence(pred, gt, rules='matlab')
    assert matlab['auc'] == pytest.approx(PERFECT) and matlab['precision'] == pytest.approx(1.0)
    assert matlab['rules'] == 'matlab'


def test_lasot_absent_frames_count_in_the_denominator_under_both_rules():
    gt = np.array([[10.0, 10, 10, 10]] * 4)
    visible = np.array([True, True, False, False])
    for rules in ('pysot', 'matlab'):
        out = metrics.ope_sequence(gt, gt, visible, rules=rules)
        # 2 visible frames hit out of 4 -> AUC 1 / 2 x 20 / 21, P@20 1 / 2
        assert out['auc'] == pytest.approx(PERFECT / 2) and out['precision'] == pytest.approx(0.5)


def test_matlab_summary_drops_sequences_with_an_all_zero_curve():
    gt = np.array([[10.0, 10, 10, 10]] * 2)
    edge = np.array([[0.0, 10, 10, 10]] * 2)         # every frame invalid (x = 0)
    far = edge + [[0, 50, 0, 0]]
    seqs = {'good': metrics.ope_sequence(gt, gt, rules='matlab'),
            'edge': metrics.ope_sequence(far, edge, rules='matlab')}
    # 'edge': overlaps -1 -> success curve all 0 -> left out of the success mean (AUC 20 / 21,
    # not 10 / 21); its error curve is all hits (-1), so it stays in the precision mean.
    summary = metrics.ope_summary(seqs)
    assert summary['auc'] == pytest.approx(PERFECT) and summary['precision'] == pytest.approx(1.0)
    pysot = metrics.ope_summary({'good': metrics.ope_sequence(gt, gt),
                                 'edge': metrics.ope_sequence(far, edge)})
    # PySOT: 'edge' is valid (w, h > 0) but misses (50 px below): AUC (20 / 21 + 0) / 2.
    assert pysot['auc'] == pytest.approx(PERFECT / 2)
    with pytest.raises(ValueError, match='different rules'):
        metrics.ope_summary({'a': seqs['good'], 'b': metrics.ope_sequence(gt, gt)})


def test_new_benchmark_keys_and_rules_option():
    for name in ('lasot_ext', 'LaSOT-ext', 'tnl2k', 'TNL2K'):
        assert metrics.metric_fns(name) == (metrics.ope_sequence, metrics.ope_summary)
    sequence_fn, _ = metrics.metric_fns('lasot', rules='matlab')
    edge = np.array([[0.0, 5, 10, 10]] * 2)
    assert sequence_fn(edge, edge)['auc'] == 0.0
    with pytest.raises(ValueError, match='OPE benchmarks only'):
        metrics.metric_fns('got10k', rules='matlab')
    with pytest.raises(ValueError, match='rules must be'):
        metrics.metric_fns('otb', rules='otb')


# --- TrackingNet devkit ------------------------------------------------------------------------

def test_trackingnet_nan_x_keeps_a_finite_iou():
    # devkit: intersection corners via pandas max/min, which skip NaN: with the prediction's x
    # NaN, inter_x1 = 10 and inter_x2 = 19 (the GT's), inter 10 x 10 = 100, areas 100 + 100 ->
    # IoU 1 (>= every threshold); its centre is NaN -> a miss in both precisions.
    gt = np.array([[10.0, 10, 10, 10], [10, 10, 10, 10]])
    pred = np.array([[10.0, 10, 10, 10], [np.nan, 10, 10, 10]])
    out = metrics.trackingnet_sequence(pred, gt)
    np.testing.assert_array_equal(out['success_curve'], np.ones(21))
    np.testing.assert_array_equal(out['precision_curve'], np.full(21, 0.5))
    assert out['auc'] == pytest.approx(1.0) and out['precision'] == pytest.approx(0.5)


def test_trackingnet_rounds_half_to_even_and_uses_plus_one_pixels():
    # GT x 10.5 -> 10 (half to even), result x 11.5 -> 12: pixels 10..19 and 12..21 share 8
    # columns -> IoU 80 / (100 + 100 - 80) = 2 / 3 (>= 0.65, < 0.7: 14 of the 21 thresholds).
    gt = np.array([[10.0, 10, 10, 10], [10.5, 10, 10, 10]])
    pred = np.array([[0.0, 0, 5, 5], [11.5, 10, 10, 10]])      # frame 0 is replaced by the GT
    out = metrics.trackingnet_sequence(pred, gt)
    assert out['success_curve'][13] == 1.0 and out['success_curve'][14] == 0.5


# --- 4. VOT result lines with NaN ---------------------------------------------------------------

def test_vot_nan_line_is_a_zero_overlap_not_an_unknown_frame():
    # 12-frame sequence without failures; every box equals the GT (raster overlap 1) except a
    # NaN line at frame 6 (overlap 0 in PySOT's region library). EAO fragment = the whole
    # sequence: positions 1..11 are 1 except position 6 = 0. curve[L] = mean of positions 1..L.
    text = '1\n' + '10,10,10,10\n' * 5 + 'nan,nan,nan,nan\n' + '10,10,10,10\n' * 5
    records = vot.parse_records(text)
    score = vot.score_sequence(records, [[10, 10, 10, 10]] * 12, (100, 100))
    assert score['failures'] == []
    values = [1.0] * 5 + [0.0] + [1.0] * 5
    curve = [1.0] + [sum(values[:n]) / n for n in range(1, 12)]
    summary = vot.vot_summary({'s': score}, (2, 12))
    np.testing.assert_allclose(summary['eao_curve'], curve, rtol=1e-6)
    assert summary['eao'] == pytest.approx(np.mean(curve[1:]), rel=1e-6)
    assert not math.isnan(summary['eao'])
