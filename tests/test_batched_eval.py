"""Tests of the batched runner (tracking/eval/batched.py, eval.py --batch_sequences).

The batched path must give the one-at-a-time path's boxes (within 0.01 px) and metrics: checked
exactly on a toy tracker whose step reads the frame's real pixels (so padding that leaked into a
step would move the box) and on GRM and SiamRPN++ tiny configs with random weights on the shared
sequences and on synthetic sequences read from an exported folder, for OPE and the VOT reset
protocol. Also: slots refilled (more sequences than slots, different lengths and frame sizes,
growing the padded bucket), failing sequences (bad ground truth, unreadable frame, initial box
outside the frame) reported without stopping the others, restarts, and eval.py without TF.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import SEQUENCES as SHARED_SEQUENCES
from tracking.api import TrackerFns
from tracking.data.sequence import Sequence
from tracking.eval import batched, results, runner
from tracking.eval.vot_protocol import ResetProtocol

REPO = Path(__file__).resolve().parents[1]
TOLERANCE_PX = 0.01


# ------------------------------------------------------------------ a toy tracker, two ways

def toy_fns() -> TrackerFns:
    """Moves the box right by speed + mean red level of the real frame region / 255 per frame."""
    def init(variables, frame, frame_hw, box):
        del variables, frame, frame_hw
        return {'box': jnp.asarray(box, jnp.float32), 'count': jnp.zeros((), jnp.int32)}

    def step(variables, state, frame, frame_hw):
        rows = jnp.arange(frame.shape[0])[:, None] < frame_hw[0]
        cols = jnp.arange(frame.shape[1])[None, :] < frame_hw[1]
        total = jnp.sum(jnp.where(rows & cols, frame[..., 0].astype(jnp.int32), 0))
        mean = total.astype(jnp.float32) / (frame_hw[0] * frame_hw[1]).astype(jnp.float32)
        shift = variables['speed'] + mean / jnp.float32(255.0)
        box = state['box'] + jnp.stack([shift, jnp.float32(0.5), jnp.float32(0.0),
                                        jnp.float32(0.0)])
        return {'box': box, 'count': state['count'] + 1}, {'box': box, 'score': mean}

    return TrackerFns(init, step)


class ToyTracker:
    """The toy tracker as a Tracker class (numpy float32), for the one-at-a-time path."""

    def __init__(self, speed: float):
        self.speed = np.float32(speed)
        self.box = None

    def initialize(self, frame, box):
        self.box = np.asarray(box, np.float32)

    def track(self, frame):
        mean = np.float32(int(frame[..., 0].astype(np.int64).sum())) / np.float32(
            frame.shape[0] * frame.shape[1])
        shift = self.speed + mean / np.float32(255.0)
        self.box = self.box + np.array([shift, 0.5, 0.0, 0.0], np.float32)
        return self.box.astype(np.float64)


def toy_sequences(seed=0) -> list[Sequence]:
    """Six sequences of different lengths and frame sizes (the 70 x 130 one grows the padded
    bucket past 64 x 128 while others run)."""
    rng = np.random.default_rng(seed)
    specs = [(7, 40, 50), (12, 64, 30), (3, 40, 50), (20, 33, 60), (9, 70, 130), (15, 50, 50)]
    sequences = []
    for k, (length, height, width) in enumerate(specs):
        frames = rng.integers(0, 256, (length, height, width, 3), dtype=np.uint8)
        boxes = np.tile([[2.0, 3.0, 10.0, 12.0]], (length, 1)) + 0.25 * np.arange(length)[:, None]
        sequences.append(Sequence(f'toy{k}', frames, boxes))
    return sequences


def _compare_outputs(out_dir, benchmark, name_a, name_b, sequences, tolerance=TOLERANCE_PX):
    """Asserts equal result files (boxes within tolerance, VOT codes equal); returns the largest
    box difference."""
    worst = 0.0
    for sequence in sequences:
        if runner.is_vot_supervised(benchmark):
            a = results.read_vot_records(results.vot_result_path(out_dir, name_a, sequence.name))
            b = results.read_vot_records(results.vot_result_path(out_dir, name_b, sequence.name))
            assert len(a) == len(b) == len(sequence)
            for index, (ra, rb) in enumerate(zip(a, b)):
                if isinstance(ra, int) or isinstance(rb, int):
                    assert ra == rb, (sequence.name, index, ra, rb)
                else:
                    worst = max(worst, float(np.abs(ra - rb).max()))
        else:
            layout = runner.protocol_benchmark(benchmark)
            a = results.read_sequence(out_dir, layout, sequence.name, name_a)
            b = results.read_sequence(out_dir, layout, sequence.name, name_b)
            assert a.shape == b.shape == (len(sequence), 4)
            worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= tolerance, worst
    return worst


def _same_metrics(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], str):
            assert a[key] == b[key], key
            continue
        np.testing.assert_allclose(np.asarray(a[key], np.float64), np.asarray(b[key], np.float64),
                                   rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize('benchmark', ['otb', 'vot'])
@pytest.mark.parametrize('slots,fused', [(1, False), (3, False), (3, True), (8, False)])
def test_toy_batched_equals_sequential(tmp_path, benchmark, slots, fused, monkeypatch):
    sequences = toy_sequences()
    speed = 3.0 if benchmark == 'vot' else 0.7   # VOT: drifts off the box, fails, resets
    per_a, summary_a, failures_a = runner.evaluate_tracker(
        lambda: ToyTracker(speed), sequences, benchmark, tmp_path, 'one', progress=False)
    stats = batched.BatchStats()
    original = batched.run_pending_batched
    monkeypatch.setattr(batched, 'run_pending_batched',
                        lambda *a, **k: original(*a, **k, fused=fused, stats=stats))
    per_b, summary_b, failures_b = runner.evaluate_tracker(
        None, sequences, benchmark, tmp_path, 'many', progress=False, batch_sequences=slots,
        fns_factory=lambda: (toy_fns(), {'speed': jnp.float32(speed)}))
    assert failures_a == failures_b == []
    worst = _compare_outputs(tmp_path, benchmark, 'one', 'many', sequences, tolerance=1e-4)
    _same_metrics(summary_a, summary_b)
    assert per_a.keys() == per_b.keys()
    if benchmark == 'vot':
        assert summary_a['lost_number'] >= 4, summary_a  # resets happened
    # Every frame that was run went through a slot; with fewer than 5 slots the 70 x 130
    # sequence (the 5th) arrives later and grows the bucket once (64 x 64 -> 128 x 192).
    if benchmark == 'otb':
        assert stats.slot_frames == sum(len(s) for s in sequences)
    assert stats.compiles == (1 if slots >= 5 else 2)
    assert worst <= 1e-4


def test_padding_never_reaches_the_tracker():
    """A slot that ran a large frame and then a small one gets a zeroed pad (the toy's mean over
    frame_hw would see leftovers if frame_hw were wrong) -- checked through init_all/step."""
    fns = batched.BatchedFns(toy_fns())
    variables = {'speed': jnp.float32(0.0)}
    frame = np.full((2, 64, 64, 3), 255, np.uint8)
    frame[:, :10, :20] = 51
    hw = np.array([[10, 20], [10, 20]], np.int32)
    box = np.zeros((2, 4), np.float32)
    state = fns.init_all(variables, frame, hw, box)
    state, boxes, _ = fns.step(variables, state, frame, hw, np.array([True, False]))
    np.testing.assert_allclose(boxes[0], [0.2, 0.5, 0, 0], atol=1e-6)   # 51 / 255
    np.testing.assert_array_equal(np.asarray(state['count']), [1, 0])   # slot 1 kept its state


def test_select_keeps_float64_leaves():
    """SiamRPN++ keeps its state in float64 (made under an x64 scope); the per-slot select runs
    under jit without x64 and must keep it."""
    from siam.functional import state_scope
    with state_scope(True):
        new = {'a': jnp.ones((3, 2), jnp.float64), 'b': jnp.arange(3, dtype=jnp.int32)}
        old = {'a': jnp.zeros((3, 2), jnp.float64), 'b': -jnp.arange(3, dtype=jnp.int32)}
    out = jax.jit(batched.select_slots)(jnp.array([True, False, True]), new, old)
    assert out['a'].dtype == np.float64
    np.testing.assert_array_equal(out['a'][:, 0], [1, 0, 1])
    np.testing.assert_array_equal(out['b'], [0, -1, 2])


def test_padded_size_buckets():
    assert batched.padded_size(1, 64) == (64, 64)
    assert batched.padded_size(65, 129) == (128, 192)
    assert batched.padded_size(240, 360, 32) == (256, 384)


# ------------------------------------------------------------------ failures and restarts

def _write_frames(folder: Path, frames) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f'{index + 1:04d}.png'
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize('benchmark', ['otb', 'vot'])
def test_failing_sequences_free_their_slot(tmp_path, benchmark):
    good = toy_sequences(seed=1)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (6, 30, 40, 3), dtype=np.uint8)
    paths = _write_frames(tmp_path / 'frames', frames)
    os.remove(paths[3])                                       # unreadable frame 3
    broken = Sequence('broken_frame', paths, np.tile([[2.0, 2.0, 8.0, 8.0]], (6, 1)))
    outside = Sequence('outside', frames, np.tile([[100.0, 2.0, 8.0, 8.0]], (6, 1)))

    def bad_ground_truth():
        raise ValueError('groundtruth_rect.txt, line 3: expected 4 numbers')

    items = [good[0], broken, good[1], ('bad_gt', bad_ground_truth), outside] + good[2:]
    speed = 3.0 if benchmark == 'vot' else 0.7
    _, summary_a, failures_a = runner.evaluate_tracker(
        lambda: ToyTracker(speed), items, benchmark, tmp_path / 'out', 'one', progress=False)
    _, summary_b, failures_b = runner.evaluate_tracker(
        None, items, benchmark, tmp_path / 'out', 'many', progress=False, batch_sequences=2,
        fns_factory=lambda: (toy_fns(), {'speed': jnp.float32(speed)}))
    names = sorted(f.name for f in failures_b)
    assert names == sorted(f.name for f in failures_a) == ['bad_gt', 'broken_frame', 'outside']
    by_name = {f.name: f.error for f in failures_b}
    assert 'frame 3' in by_name['broken_frame'] and '0004.png' in by_name['broken_frame']
    assert 'lies outside frame 0' in by_name['outside']
    assert 'line 3' in by_name['bad_gt']
    _compare_outputs(tmp_path / 'out', benchmark, 'one', 'many', good, tolerance=1e-4)
    _same_metrics(summary_a, summary_b)


def test_restart_runs_only_unfinished_sequences(tmp_path):
    sequences = toy_sequences()
    factory = lambda: (toy_fns(), {'speed': jnp.float32(0.7)})  # noqa: E731
    runner.evaluate_tracker(None, sequences, 'otb', tmp_path, 't', progress=False,
                            batch_sequences=4, fns_factory=factory)
    folder = tmp_path / 't'
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    (folder / 'toy3.txt').unlink()
    calls = []
    written = []
    done = lambda s: results.is_done(tmp_path, 'otb', 't', s.name, len(s))  # noqa: E731
    failures = batched.run_pending_batched(
        lambda: calls.append(1) or factory(), sequences, done,
        lambda s, boxes, times: written.append(s.name) or results.write_sequence(
            tmp_path, 'otb', 't', s.name, boxes, times),
        'ope', 'restart', False, 3)
    assert failures == [] and calls == [1] and written == ['toy3']
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert all(after[n] == before[n] for n in before if not n.startswith('toy3'))
    # Everything done: the tracker functions are not even built.
    assert batched.run_pending_batched(lambda: pytest.fail('built'), sequences, done,
                                       None, 'ope', 'again', False, 3) == []


def test_reset_protocol_state_machine():
    regions = np.tile([[0.0, 0.0, 10.0, 10.0]], (12, 1))
    regions[7] = np.nan                                      # unusable at the re-init frame
    protocol = ResetProtocol('s', regions)
    assert protocol.needs_init and protocol.index == 0
    protocol.record_init(0.1)
    assert protocol.record_track([1, 1, 5, 5], (50, 50)) is False
    assert protocol.record_track([30, 30, 5, 5], (50, 50)) is True      # frame 2 fails
    assert protocol.index == 8 and protocol.needs_init                  # 7 unusable -> 8
    np.testing.assert_allclose(protocol.init_box(), [0.5, 0.5, 10, 10])  # cx - (w - 1) / 2
    protocol.record_init()
    for _ in range(3):
        protocol.record_track([0, 0, 10, 10], (50, 50))
    assert protocol.done
    codes = [r if isinstance(r, int) else 'box' for r in protocol.records]
    assert codes == [1, 'box', 2, 0, 0, 0, 0, 0, 1, 'box', 'box', 'box']
    with pytest.raises(ValueError, match='frame 0 ground truth'):
        ResetProtocol('s', np.full((3, 4), np.nan))


# ------------------------------------------------------------------ real trackers

def _shared_sequences(length: int) -> list[Sequence]:
    from tracking.data.benchmarks import read_otb_sequence, read_vot_sequence
    crossing = read_otb_sequence(SHARED_SEQUENCES / 'otb' / 'Crossing')
    bag = read_vot_sequence(SHARED_SEQUENCES / 'vot' / 'bag')
    out = []
    for s in (crossing, bag):
        extra = {k: (v[:length] if k == 'polygons' else v) for k, v in s.extra.items()}
        out.append(Sequence(s.name, list(s.frames[:length]), s.boxes[:length],
                            None if s.visible is None else s.visible[:length], extra))
    return out


def _synthetic_folder_sequences(root: Path, count: int, length: int) -> list[Sequence]:
    """`count` synthetic sequences written to an exported-layout folder and read back from it."""
    from tracking.data.synthetic import generate_sequence
    from tracking.data.synthetic_folder import synthetic_folder_entries, write_synthetic_folder
    sequences = []
    for k in range(count):
        g = generate_sequence(2_000_000 + k, length, (96, 96))
        sequences.append(Sequence(f'synthetic_test_{k:04d}', g['frames'], g['boxes'],
                                  g['visible'], {'image_size': (96, 96)}))
    write_synthetic_folder(root, sequences, 'test')
    loaded = [load() for _, load in synthetic_folder_entries(root)]
    for a, b in zip(sequences, loaded):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.frames[3], b.frame(3))   # lossless frames
    return loaded


@pytest.fixture(scope='module')
def synthetic_folder_sequences(tmp_path_factory):
    return _synthetic_folder_sequences(tmp_path_factory.mktemp('synthetic_folder'), 3, 8)


@pytest.fixture(scope='module')
def shared_sequences():
    from conftest import check_shared
    check_shared(SHARED_SEQUENCES / 'otb' / 'Crossing', SHARED_SEQUENCES / 'vot' / 'bag',
                 what='OTB Crossing and VOT bag')
    return _shared_sequences(6)


def _random_variables(config):
    """Random weights of the config's model from its abstract variables (fast: the models'
    jitted init takes ~40 s to compile for SiamRPN++ tiny here): BN/LN scales 1 + N(0, 0.1),
    running means 0, variances 1, other leaves N(0, 1 / fan_in)."""
    from tracking.tracker import expected_variables
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        key = str(getattr(path[-1], 'key', path[-1]))
        shape, dtype = leaf.shape, leaf.dtype
        if key == 'var':
            return np.ones(shape, dtype)
        if key == 'mean':
            return np.zeros(shape, dtype)
        if key == 'scale':
            return (1 + 0.1 * rng.standard_normal(shape)).astype(dtype)
        fan_in = int(np.prod(shape[:-1])) if len(shape) >= 2 else 100
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    return jax.tree_util.tree_map_with_path(fill, expected_variables(config))


def _check_real_tracker(config_name, runs, tmp_path):
    """runs: [(benchmark, sequences)]; class path vs batched (2 slots) for each."""
    from tracking.config import load_config
    from tracking.tracker import make_tracker, make_tracker_fns
    config = load_config(str(REPO / 'configs' / config_name))
    variables = _random_variables(config)
    # One tracker and one TrackerFns for both protocols (OTB and VOT settings are the same for
    # these configs), so each compiles once per frame size.
    tracker = make_tracker(config, variables, 'otb')
    fns_and_variables = make_tracker_fns(config, variables, 'otb')
    for benchmark, sequences in runs:
        out = tmp_path / benchmark
        _, summary_a, failures_a = runner.evaluate_tracker(
            lambda: tracker, sequences, benchmark, out, 'one', progress=False)
        _, summary_b, failures_b = runner.evaluate_tracker(
            None, sequences, benchmark, out, 'many', progress=False, batch_sequences=2,
            fns_factory=lambda: fns_and_variables)
        assert failures_a == failures_b == []
        _compare_outputs(out, benchmark, 'one', 'many', sequences)
        for key in summary_a:
            if key in ('eao', 'accuracy', 'auc', 'precision', 'robustness'):
                assert abs(summary_a[key] - summary_b[key]) < 1e-9 or (
                    np.isnan(summary_a[key]) and np.isnan(summary_b[key])), key
            elif key in ('lost_number', 'num_frames', 'num_sequences'):
                assert summary_a[key] == summary_b[key], key


@pytest.mark.parametrize('config_name', ['grm.py:tiny', 'siamrpn.py:tiny'])
def test_real_trackers_batched_equal_sequential_synthetic(tmp_path, synthetic_folder_sequences,
                                                          config_name):
    """Synthetic sequences read from an exported folder (3 sequences, 2 slots), OPE and VOT."""
    _check_real_tracker(config_name, [('synthetic', synthetic_folder_sequences),
                                      ('vot', synthetic_folder_sequences)], tmp_path)


@pytest.mark.parametrize('config_name', ['grm.py:tiny', 'siamrpn.py:tiny'])
def test_real_trackers_batched_equal_sequential_shared(tmp_path, shared_sequences, config_name):
    """The shared sequences (6 frames each): OTB Crossing one-pass, VOT bag with resets."""
    crossing, bag = shared_sequences
    _check_real_tracker(config_name, [('otb', [crossing]), ('vot', [bag])], tmp_path)


# ------------------------------------------------------------------ no TensorFlow

def test_eval_py_on_folder_benchmark_imports_no_tensorflow(tmp_path):
    """eval.py, the trackers and the models import without TF; an eval on an exported synthetic
    folder (and batched) never imports it."""
    rng = np.random.default_rng(3)
    sequences = [Sequence(f'synthetic_test_{k:04d}',
                          rng.integers(0, 256, (5, 32, 40, 3), dtype=np.uint8),
                          np.tile([[3.0, 4.0, 10.0, 9.0]], (5, 1)), np.ones(5, bool),
                          {'image_size': (40, 32)}) for k in range(3)]
    from tracking.data.synthetic_folder import write_synthetic_folder
    write_synthetic_folder(tmp_path / 'folder', sequences, 'test')
    for batch in (None, '2'):
        argv = ['eval.py', '--baseline', 'static', '--benchmark', 'synthetic', '--root',
                str(tmp_path / 'folder'), '--out', str(tmp_path / f'out{batch}'),
                '--progress=false'] + ([] if batch is None else ['--batch_sequences', batch])
        script = f"""
import sys
import eval, grm_jax, grm_jax.functional, grm_jax.tracker, siam, siam.functional, siam.tracker
import tracking.eval.batched, tracking.tracker, tracking.data.synthetic_folder
from absl import app
from tracking.config import parse_flags_or_exit
sys.argv = {argv!r}
try:
    app.run(eval.main, flags_parser=parse_flags_or_exit)
except SystemExit as e:
    assert not e.code, e.code
print('TF', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow',
                                                                  'tensorflow_datasets')))
"""
        proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'TF []' in proc.stdout, proc.stdout[-2000:]
    a = json.loads((tmp_path / 'outNone' / 'metrics.json').read_text())
    b = json.loads((tmp_path / 'out2' / 'metrics.json').read_text())
    assert a == b and a['summaries']['static']['num_sequences'] == 3


def test_eval_py_batch_sequences_flag_errors(tmp_path):
    proc = subprocess.run([sys.executable, 'eval.py', '--baseline', 'static', '--benchmark',
                           'otb', '--root', str(tmp_path), '--out', str(tmp_path / 'o'),
                           '--batch_sequences', '0'], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert 'eval.py: error: --batch_sequences must be >= 1, got 0' in proc.stderr
