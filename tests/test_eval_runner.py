"""Tests of tracking/tracker.py, tracking/eval/runner.py and the eval.py command line."""
import json
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from configs.grm import get_config
from tracking import tracker as tracker_lib
from tracking.data.sequence import Sequence
from tracking.eval import runner
from tracking.images import FrameError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
NUM_FRAMES = 5


def _make_sequence(seq_id: int, name: str, num_frames: int = NUM_FRAMES) -> Sequence:
    """In-memory sequence whose frames encode (frame index, sequence id) in pixel (0, 0).

    GT: a 20x20 box moving 3 px right per frame, starting at (10 + 10 * seq_id, 12).
    """
    frames = np.zeros((num_frames, 64, 64, 3), np.uint8)  # boxes lie inside
    frames[:, 0, 0, 0] = np.arange(num_frames)
    frames[:, 0, 0, 1] = seq_id
    boxes = np.stack([[10.0 + 10 * seq_id + 3 * t, 12.0, 20.0, 20.0]
                      for t in range(num_frames)])
    return Sequence(name, frames, boxes)


SEQUENCES = [_make_sequence(0, 'a'), _make_sequence(1, 'b'), _make_sequence(2, 'c')]
GT_BY_ID = {i: s.boxes.astype(np.float64) for i, s in enumerate(SEQUENCES)}


class OffsetTracker:
    """Returns the GT box of the frame shifted by `offset` (reads the frame/sequence ids)."""

    def __init__(self, offset=(0.0, 0.0), fail_on=None, calls=None):
        self.offset = np.array([offset[0], offset[1], 0.0, 0.0])
        self.fail_on = fail_on
        self.calls = calls if calls is not None else []
        self._seq = None

    def initialize(self, frame, box_xywh):
        self._seq = int(frame[0, 0, 1])
        self.calls.append(('init', self._seq))

    def track(self, frame):
        index = int(frame[0, 0, 0])
        self.calls.append(('track', self._seq, index))
        if self._seq == self.fail_on and index == 2:
            raise RuntimeError('boom in the fake tracker')
        return GT_BY_ID[self._seq][index] + self.offset


def _factory(counter, **kwargs):
    def make():
        counter.append('made')
        return OffsetTracker(**kwargs)
    return make


# --- tracking/tracker.py ------------------------------------------------------------------------

def test_run_sequence_returns_init_box_first_and_tracker_boxes():
    sequence = SEQUENCES[1]
    boxes, times = tracker_lib.run_sequence(OffsetTracker(offset=(5.0, -2.0)), sequence)
    assert boxes.shape == (NUM_FRAMES, 4) and boxes.dtype == np.float64
    assert times.shape == (NUM_FRAMES,) and np.all(times >= 0)
    np.testing.assert_array_equal(boxes[0], [20.0, 12.0, 20.0, 20.0])
    np.testing.assert_array_equal(boxes[3], [20.0 + 9 + 5, 10.0, 20.0, 20.0])


def test_static_tracker_repeats_init_box():
    boxes, _ = tracker_lib.run_sequence(tracker_lib.StaticTracker(), SEQUENCES[2])
    np.testing.assert_array_equal(boxes, np.tile([30.0, 12.0, 20.0, 20.0], (NUM_FRAMES, 1)))


@pytest.mark.parametrize('bad_box', [[np.nan, 1, 2, 3], [1, 1, 0, 3], [1, 1, 5, -1]])
def test_run_sequence_rejects_bad_init_box(bad_box):
    boxes = np.tile(np.array(bad_box, np.float32), (3, 1))
    sequence = Sequence('badinit', np.zeros((3, 4, 4, 3), np.uint8), boxes)
    with pytest.raises(ValueError, match='badinit'):
        tracker_lib.run_sequence(tracker_lib.StaticTracker(), sequence)


def test_run_sequence_frame_error_names_sequence_and_frame(tmp_path):
    good = tmp_path / '0001.png'
    cv2.imwrite(str(good), np.zeros((6, 6, 3), np.uint8))
    (tmp_path / '0003.png').write_bytes(b'not an image')
    frames = [str(good), str(tmp_path / '0002.png'), str(tmp_path / '0003.png')]
    sequence = Sequence('broken', frames, np.tile([1, 1, 3, 3], (3, 1)))
    with pytest.raises(FrameError, match=r'broken, frame 1'):
        tracker_lib.run_sequence(tracker_lib.StaticTracker(), sequence)


def test_make_tracker_registry_and_thresholds(monkeypatch):
    config = get_config('vitb_256')
    assert tracker_lib.benchmark_threshold(config, 'lasot') == pytest.approx(0.4)
    assert tracker_lib.benchmark_threshold(config, 'otb') == 0.0

    class FakeGRM:
        def __init__(self, config, variables, threshold=0.0):
            self.variables, self.threshold = variables, threshold
    monkeypatch.setitem(sys.modules, 'grm_jax.tracker', types.SimpleNamespace(GRMTracker=FakeGRM))
    built = tracker_lib.make_tracker(config, {'params': 1}, 'nfs')
    assert isinstance(built, FakeGRM)
    assert built.threshold == pytest.approx(0.6) and built.variables == {'params': 1}

    config.tracker = 'static'
    assert isinstance(tracker_lib.make_tracker(config, None, 'otb'), tracker_lib.StaticTracker)
    config.tracker = 'nope'
    with pytest.raises(ValueError, match="unknown tracker 'nope'"):
        tracker_lib.make_tracker(config, None, 'otb')


# --- tracking/eval/runner.py --------------------------------------------------------------------

def test_canonical_benchmark():
    assert runner.canonical_benchmark('OTB2015') == 'otb'
    assert runner.canonical_benchmark('GOT-10k') == 'got10k'
    assert runner.canonical_benchmark('vot2018') == 'vot'
    with pytest.raises(ValueError, match='known benchmarks: otb, lasot'):
        runner.canonical_benchmark('imagenet')


def test_evaluate_writes_official_files_and_hand_computed_metrics(tmp_path):
    made = []
    per_seq, summary, failures = runner.evaluate_tracker(
        _factory(made, offset=(5.0, 0.0)), SEQUENCES, 'otb', str(tmp_path), 'shifted',
        progress=False)
    assert failures == [] and made == ['made']
    lines = (tmp_path / 'shifted' / 'b.txt').read_text().splitlines()
    assert len(lines) == NUM_FRAMES
    assert lines[0] == '20.0000,12.0000,20.0000,20.0000'  # init box as given
    assert lines[2] == '31.0000,12.0000,20.0000,20.0000'  # GT (26, 12) + 5 px
    # 20x20 boxes 5 px apart: IoU = 300 / 500 = 0.6 > thresholds 0..0.55 (12 of 21);
    # frame 0 (IoU 1) > 20 of 21 thresholds.
    expected_auc = (20 + (NUM_FRAMES - 1) * 12) / (21 * NUM_FRAMES)
    assert set(per_seq) == {'a', 'b', 'c'}
    assert per_seq['a']['auc'] == pytest.approx(expected_auc)
    assert summary['auc'] == pytest.approx(expected_auc)
    assert summary['precision'] == pytest.approx(1.0)  # 5 px <= 20 px
    assert summary['num_sequences'] == 3


def test_restart_skips_finished_sequences(tmp_path):
    runner.evaluate_tracker(_factory([]), SEQUENCES, 'otb', str(tmp_path), 't', progress=False)
    made, calls = [], []
    per_seq, summary, _ = runner.evaluate_tracker(
        _factory(made, calls=calls), SEQUENCES, 'otb', str(tmp_path), 't', progress=False)
    assert made == [] and calls == []          # nothing re-run
    assert set(per_seq) == {'a', 'b', 'c'}     # but everything scored from disk
    assert summary['auc'] == pytest.approx(20 / 21)

    (tmp_path / 't' / 'a.txt').unlink()        # lost
    truncated = tmp_path / 't' / 'c.txt'       # incomplete
    truncated.write_text(''.join(truncated.read_text().splitlines(True)[:2]))
    runner.evaluate_tracker(_factory(made, calls=calls), SEQUENCES, 'otb', str(tmp_path), 't',
                            progress=False)
    assert made == ['made']
    assert [c for c in calls if c[0] == 'init'] == [('init', 0), ('init', 2)]
    assert len(truncated.read_text().splitlines()) == NUM_FRAMES


def test_failing_sequence_is_reported_and_others_finish(tmp_path):
    per_seq, summary, failures = runner.evaluate_tracker(
        _factory([], fail_on=1), SEQUENCES, 'otb', str(tmp_path), 'flaky', progress=False)
    assert [f.name for f in failures] == ['b']
    assert 'boom in the fake tracker' in failures[0].error
    assert not (tmp_path / 'flaky' / 'b.txt').exists()
    assert (tmp_path / 'flaky' / 'c.txt').is_file()
    assert set(per_seq) == {'a', 'c'} and summary['num_sequences'] == 2


def test_score_results_orders_trackers(tmp_path):
    runs = {}
    for name, offset in (('good', (1.0, 0.0)), ('bad', (8.0, 4.0))):
        runs[name] = runner.evaluate_tracker(_factory([], offset=offset), SEQUENCES, 'otb',
                                             str(tmp_path), name, progress=False)
    scored = runner.score_results([str(tmp_path / 'bad'), str(tmp_path / 'good')], SEQUENCES,
                                  'otb')
    assert list(scored) == ['bad', 'good']
    assert scored['good'][1]['auc'] > scored['bad'][1]['auc']
    assert scored['good'][1]['auc'] == pytest.approx(runs['good'][1]['auc'])
    assert set(scored['bad'][0]) == {'a', 'b', 'c'}
    with pytest.raises(FileNotFoundError, match='missing'):
        runner.score_results([str(tmp_path / 'missing')], SEQUENCES, 'otb')


def test_withheld_ground_truth_is_written_zipped_not_scored(tmp_path):
    boxes = np.full((NUM_FRAMES, 4), np.nan, np.float32)
    boxes[0] = [10, 12, 20, 20]
    test_seq = Sequence('GOT-10k_Test_000001', SEQUENCES[0].frames, boxes)
    per_seq, summary, failures = runner.evaluate_tracker(
        tracker_lib.StaticTracker, [test_seq], 'got10k', str(tmp_path), 'st', progress=False)
    assert per_seq == {} and summary is None and failures == []
    box_file = tmp_path / 'st' / test_seq.name / f'{test_seq.name}_001.txt'
    assert box_file.read_text().splitlines()[-1] == '10.000,12.000,20.000,20.000'
    with zipfile.ZipFile(tmp_path / 'st.zip') as archive:
        assert f'{test_seq.name}/{test_seq.name}_001.txt' in archive.namelist()


# --- eval.py ------------------------------------------------------------------------------------

def _eval_cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'eval.py'), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_static_baseline_on_real_otb_sequence(tmp_path, require_shared):
    crossing = SHARED / 'data' / 'sequences' / 'otb' / 'Crossing'
    require_shared(crossing, what='eval.py static baseline on OTB Crossing')
    out = tmp_path / 'eval'
    proc = _eval_cli('--baseline', 'static', '--benchmark', 'otb', '--root',
                     str(crossing.parent), '--out', str(out), '--noprogress')
    assert proc.returncode == 0, proc.stderr
    result = out / 'results' / 'OTB100' / 'static' / 'Crossing.txt'
    lines = result.read_text().splitlines()
    assert len(lines) == 120 and len(set(lines)) == 1   # static: the init box every frame
    metrics = json.loads((out / 'metrics.json').read_text())
    auc = metrics['summaries']['static']['auc']
    assert 0.0 < auc < 0.5
    assert (out / 'otb_success.png').stat().st_size > 0
    assert (out / 'otb_precision.png').stat().st_size > 0
    assert 'static' in proc.stdout and 'AUC' in proc.stdout

    scored = _eval_cli('--benchmark', 'otb', '--root', str(crossing.parent), '--results',
                       str(result.parent), '--out', str(tmp_path / 'score'))
    assert scored.returncode == 0, scored.stderr
    rescored = json.loads((tmp_path / 'score' / 'metrics.json').read_text())
    assert rescored['summaries']['static']['auc'] == pytest.approx(auc)


def test_cli_unknown_benchmark_lists_known_ones(tmp_path):
    proc = _eval_cli('--baseline', 'static', '--benchmark', 'imagenet', '--root', '.',
                     '--out', str(tmp_path))
    assert proc.returncode != 0
    assert 'unknown benchmark' in proc.stderr and 'otb, lasot, got10k' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_factory_error_propagates_instead_of_failing_every_sequence(tmp_path):
    def broken_factory():
        raise FileNotFoundError('no checkpoint here')
    with pytest.raises(FileNotFoundError, match='no checkpoint here'):
        runner.evaluate_tracker(broken_factory, SEQUENCES, 'otb', str(tmp_path), 'x',
                                progress=False)


def test_cli_needs_exactly_one_mode(tmp_path):
    proc = _eval_cli('--benchmark', 'otb', '--root', '.', '--out', str(tmp_path))
    assert proc.returncode != 0
    assert 'give exactly one of --config' in proc.stderr
