"""Benchmark metrics against hand-computed values (tracking/eval/metrics.py)."""
import numpy as np
import pytest

from tracking.eval import metrics

GT = [0.0, 0.0, 10.0, 10.0]


def _seq(*preds):
    """Ground truth GT on every frame, predictions as given."""
    return np.array(preds, np.float64), np.array([GT] * len(preds), np.float64)


# ---------------------------------------------------------------- OPE (PySOT conventions)

def test_ope_three_frames_hand_computed():
    # IoUs: 1, 1/3 (shift 5 px: 50 / 150), 0.5 (half height: 50 / 100).
    pred, gt = _seq(GT, [5, 0, 10, 10], [0, 0, 10, 5])
    r = metrics.ope_sequence(pred, gt)
    expected = np.zeros(21)
    expected[:7] = 1.0          # thresholds 0 .. 0.30 < 1/3
    expected[7:10] = 2 / 3      # 0.35 .. 0.45: frames with IoU 1 and 0.5
    expected[10:20] = 1 / 3     # 0.50 .. 0.95: IoU 0.5 is not > 0.5; only IoU 1
    expected[20] = 0.0          # IoU 1 is not > 1
    np.testing.assert_allclose(r['success_curve'], expected)
    assert r['auc'] == pytest.approx(37 / 63)
    # Centre errors: 0, 5 (x shift), 2.5 (centre y 4.5 -> 2.0).
    np.testing.assert_allclose(r['precision_curve'][:6], [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert r['precision'] == 1.0
    # Normalised errors (GT 10 x 10): 0, 0.5, 0.25.
    assert r['norm_precision'] == pytest.approx(1 / 3)
    assert r['norm_precision_curve'][30] == pytest.approx(2 / 3)
    assert r['norm_precision_curve'][50] == pytest.approx(1.0)
    assert r['success_curve'].shape == (21,)
    assert r['precision_curve'].shape == (51,) and r['norm_precision_curve'].shape == (51,)


@pytest.mark.parametrize('shift, counted', [((20, 0), True), ((12, 16), True),
                                            ((20.5, 0), False)])
def test_precision_at_20px_boundary(shift, counted):
    pred, gt = _seq(GT, [shift[0], shift[1], 10, 10])
    r = metrics.ope_sequence(pred, gt)
    assert r['precision'] == (1.0 if counted else 0.5)


def test_ope_iou_equal_to_threshold_not_counted():
    pred, gt = _seq(GT, [0, 0, 10, 5])  # IoU exactly 0.5
    r = metrics.ope_sequence(pred, gt)
    assert r['success_curve'][9] == 1.0    # 0.45
    assert r['success_curve'][10] == 0.5   # 0.50: strict >


def test_lasot_absent_frames_stay_in_denominator():
    pred, gt = _seq(GT, GT, [50, 50, 5, 5], GT)
    visible = np.array([True, True, False, False])
    r = metrics.ope_sequence(pred, gt, visible)
    assert r['success_curve'][0] == 0.5
    assert r['auc'] == pytest.approx(2 / 4 * 20 / 21)
    assert r['precision'] == 0.5
    assert r['norm_precision'] == 0.5
    full = metrics.ope_sequence(pred, gt)
    assert full['precision'] == 0.75  # the wrong box on frame 2 is what fails without the mask


def test_invalid_gt_handled_as_pysot():
    pred = np.array([GT, GT], np.float64)
    gt = np.array([GT, [np.nan] * 4])
    r = metrics.ope_sequence(pred, gt)
    assert r['success_curve'][0] == 0.5    # invalid GT: IoU -1, a failure
    assert r['precision'] == 1.0           # PySOT / OTB quirk: distance -1 counts as success
    assert r['norm_precision'] == 1.0


def test_nan_prediction_is_a_failure():
    pred, gt = _seq(GT, [np.nan] * 4)
    r = metrics.ope_sequence(pred, gt)
    assert r['success_curve'][0] == 0.5 and r['precision'] == 0.5


def test_ope_summary_averages_curves_per_sequence():
    a = metrics.ope_sequence(*_seq(GT, [40, 40, 10, 10]))  # precision 0.5
    b = metrics.ope_sequence(*_seq(GT, GT, GT, GT))         # precision 1.0
    s = metrics.ope_summary({'a': a, 'b': b})
    assert s['precision'] == pytest.approx(0.75)  # not the pooled 5 / 6
    assert s['auc'] == pytest.approx((a['auc'] + b['auc']) / 2)
    np.testing.assert_allclose(s['success_curve'], (a['success_curve'] + b['success_curve']) / 2)
    assert s['num_sequences'] == 2
    with pytest.raises(ValueError):
        metrics.ope_summary({})


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match='2 frames but ground truth has 3'):
        metrics.ope_sequence(np.zeros((2, 4)), np.ones((3, 4)))


# ---------------------------------------------------------------- GOT-10k

def test_got10k_first_frame_excluded_and_sr_strict():
    # frame 0 garbage (excluded); IoUs of frames 1..4: 1, 0.5, 0.8, 0.
    pred, gt = _seq([90, 90, 1, 1], GT, [0, 0, 10, 5], [0, 0, 10, 8], [30, 30, 5, 5])
    r = metrics.got10k_sequence(pred, gt)
    np.testing.assert_allclose(r['ious'], [1, 0.5, 0.8, 0], atol=1e-12)
    assert r['ao'] == pytest.approx(0.575)
    assert r['sr50'] == 0.5   # 0.5 is not > 0.5
    assert r['sr75'] == 0.5
    assert r['num_frames'] == 4


def test_got10k_pools_frames_across_sequences_and_drops_cover_zero():
    a = metrics.got10k_sequence(*_seq(GT, GT, [30, 30, 5, 5]))       # IoUs 1, 0
    pred_b, gt_b = _seq(GT, GT, [30, 30, 5, 5], GT, GT)
    b = metrics.got10k_sequence(pred_b, gt_b, cover=[8, 8, 0, 5, 1])  # frame 2 dropped
    np.testing.assert_allclose(b['ious'], [1, 1, 1])
    s = metrics.got10k_summary({'a': a, 'b': b})
    assert s['ao'] == pytest.approx(4 / 5)      # pooled; per-sequence mean would be 0.75
    assert s['sr50'] == pytest.approx(4 / 5)
    assert s['num_frames'] == 5
    assert s['success_curve'].shape == (101,)
    assert s['success_curve'][0] == pytest.approx(4 / 5)
    assert s['success_curve'][75] == pytest.approx(s['sr75'])


def test_got10k_clips_to_image_like_the_toolkit():
    pred, gt = _seq(GT, [-5, 0, 10, 10], [5, 0, 10, 10])
    free = metrics.got10k_sequence(pred, gt)
    np.testing.assert_allclose(free['ious'], [1 / 3, 1 / 3])
    clipped = metrics.got10k_sequence(pred, gt, image_wh=(10, 10))
    # x is clamped to 0 (w kept, since w <= W - x); the second box loses its outside half.
    np.testing.assert_allclose(clipped['ious'], [1.0, 0.5])


def test_mean_fps_ignores_unknown_times():
    assert metrics.mean_fps([0.0, 0.5, 0.25, np.nan]) == pytest.approx(3.0)
    assert metrics.mean_fps([0.0]) == -1.0


# ---------------------------------------------------------------- TrackingNet

def test_trackingnet_hand_computed_areas():
    # +1-pixel IoU of a 5 px shift: 50 / 150; centre error 5 px, normalised 0.5.
    pred, gt = _seq([99, 99, 3, 3], [5, 0, 10, 10])  # frame 0 is replaced by the GT
    r = metrics.trackingnet_sequence(pred, gt)
    expected = np.full(21, 0.5)
    expected[:7] = 1.0
    np.testing.assert_allclose(r['success_curve'], expected)
    assert r['auc'] == pytest.approx(0.6625)
    assert r['precision'] == pytest.approx(0.9625)   # 5 <= 5 counts from 5 px on
    assert r['norm_precision'] == pytest.approx(0.5125)  # 0.5 <= 0.5 only at the last point


def test_trackingnet_counts_iou_equal_to_threshold_and_rounds():
    pred, gt = _seq(GT, [0, 0, 10, 5], [0.4, 0.0, 10.4, 10.0])  # IoU 0.5 (+1 convention), 1
    r = metrics.trackingnet_sequence(pred, gt)
    assert r['success_curve'][10] == 1.0   # IoU 0.5 >= 0.5
    assert r['success_curve'][11] == pytest.approx(2 / 3)
    assert r['success_curve'][20] == pytest.approx(2 / 3)  # rounded box is exact: IoU 1 >= 1
    ope = metrics.ope_sequence(pred, gt)
    assert ope['success_curve'][10] < 1.0


def test_trackingnet_summary_areas_of_mean_curves():
    a = metrics.trackingnet_sequence(*_seq(GT, [5, 0, 10, 10]))
    b = metrics.trackingnet_sequence(*_seq(GT, GT, GT))
    s = metrics.trackingnet_summary({'a': a, 'b': b})
    assert b['auc'] == pytest.approx(1.0)
    assert s['auc'] == pytest.approx((0.6625 + 1.0) / 2)
    assert s['success_curve'].shape == (21,)


# ---------------------------------------------------------------- dispatch

def test_metrics_for_and_evaluate():
    for name in ('lasot', 'lasot_ext', 'tnl2k', 'synthetic'):
        assert metrics.METRICS_FOR[name] == (metrics.ope_sequence, metrics.ope_summary)
    for name in ('otb', 'uav123', 'nfs'):   # no absent frames in PySOT's OTB/UAV/NFS videos
        assert metrics.METRICS_FOR[name] == (metrics.ope_sequence_all_frames, metrics.ope_summary)
    assert metrics.metric_fns('GOT-10k')[0] is metrics.got10k_sequence
    with pytest.raises(KeyError, match='VOT'):
        metrics.metric_fns('vot2018')
    pred, gt = _seq(GT, GT, [30, 30, 5, 5])
    inputs = {'s': {'pred': pred, 'gt': gt, 'visible': np.ones(3, bool), 'cover': [1, 1, 0]}}
    per_seq, summary = metrics.evaluate('got10k', inputs)
    assert summary['ao'] == pytest.approx(1.0)   # cover drops the failed frame
    per_seq, summary = metrics.evaluate('lasot', inputs)
    assert summary['precision'] == pytest.approx(2 / 3)
