"""Bad input (issue 7, section 3): one bad sequence never stops the others, and every message
names the file, frame, key or step. Small fake trees written here; command lines run in
subprocesses (they must fail fast, before heavy imports).

Run as a script (`python tests/test_bad_input.py --config CFG --workdir DIR`), this file is
train.py with a toy task registered (used by the SIGINT test).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / 'tests') not in sys.path:
    sys.path.insert(0, str(REPO / 'tests'))

from helpers import write_jpeg, write_text  # noqa: E402


def _env() -> dict:
    env = dict(os.environ)
    env['JAX_PLATFORMS'] = 'cpu'
    env['PYTHONPATH'] = str(REPO)
    return env


def _cli(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess, program: str) -> str:
    """Asserts exit status 2 and a single `<program>: error: ...` line on stderr; returns it."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f'{program}: error: ')]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


# --- fake benchmark trees ------------------------------------------------------------------

GOOD = ['2,2,10,8', '3,2,10,8', '4,2,10,8']
BAD_OTB = {  # sequence -> (ground-truth lines, text the failure must hold)
    'NanVisible': (['2,2,10,8', 'NaN,NaN,NaN,NaN', '4,2,10,8'], 'line 2: NaN box in frame 1'),
    'ZeroFirst': (['2,2,0,8', '3,2,10,8', '4,2,10,8'], 'line 1: first box has zero'),
    'MoreLines': (GOOD + ['5,2,10,8'], '4 ground-truth lines but 3 frames'),
    'FewerLines': (GOOD[:2], '2 ground-truth lines but 3 frames'),
    'Empty': ([], 'empty annotation file'),
    'ThreeValues': (['2,2,10,8', '3,2,10', '4,2,10,8'], 'line 2: expected 4 values, got 3'),
    'NotNumbers': (['2,2,10,8', '3,2,ten,8', '4,2,10,8'], 'line 2: not a list of numbers'),
}


def make_otb_tree(root: Path, bad: bool = True) -> None:
    """OTB layout: Good and Good2 (3 frames each) plus the BAD_OTB sequences (3 frames each)."""
    sequences = {'Good': GOOD, 'Good2': GOOD}
    if bad:
        sequences.update({name: lines for name, (lines, _) in BAD_OTB.items()})
    for name, lines in sequences.items():
        for i in range(1, 4):
            write_jpeg(root / name / 'img' / f'{i:04d}.jpg', 10 * i)
        gt = root / name / 'groundtruth_rect.txt'
        if lines:
            write_text(gt, lines)
        else:
            gt.write_text('')


def _check_otb_failures(failures, root: Path) -> None:
    by_name = {f.name: f.error for f in failures}
    assert sorted(by_name) == sorted(BAD_OTB), by_name
    for name, (_, expected) in BAD_OTB.items():
        assert str(root / name / 'groundtruth_rect.txt') in by_name[name], by_name[name]
        assert expected in by_name[name], by_name[name]


def test_bad_ground_truth_fails_only_its_sequence(tmp_path):
    """Every kind of bad ground truth: benchmark_entries lists them without reading; the runner
    reports each (file + line) and still runs and scores Good and Good2."""
    from tracking.data.benchmarks import benchmark_entries, load_benchmark
    from tracking.eval import runner
    from tracking.tracker import StaticTracker

    root = tmp_path / 'otb'
    make_otb_tree(root)
    entries = benchmark_entries('otb', root)
    assert [name for name, _ in entries] == sorted(['Good', 'Good2', *BAD_OTB])
    import pytest
    with pytest.raises(ValueError):  # The eager form still raises for existing callers.
        load_benchmark('otb', root)

    per_sequence, summary, failures = runner.evaluate_tracker(
        StaticTracker, entries, 'otb', str(tmp_path / 'out'), 'st', progress=False)
    assert sorted(per_sequence) == ['Good', 'Good2'] and summary is not None
    _check_otb_failures(failures, root)
    assert all(f.error.startswith('cannot load: ValueError') for f in failures)

    sequences, load_failures = runner.load_sequences(entries)
    assert [s.name for s in sequences] == ['Good', 'Good2']
    _check_otb_failures(load_failures, root)


def test_vot_reset_path_loads_each_sequence_on_its_own(tmp_path):
    from tracking.data.benchmarks import benchmark_entries
    from tracking.eval import runner
    from tracking.tracker import StaticTracker

    for name, lines in (('good', ['2,2,10,8'] * 3), ('bad', ['2,2,10,8', '1,2,3', '2,2,10,8'])):
        for i in range(1, 4):
            write_jpeg(tmp_path / 'vot' / name / 'color' / f'{i:08d}.jpg')
        write_text(tmp_path / 'vot' / name / 'groundtruth.txt', lines)
    entries = benchmark_entries('vot2018', tmp_path / 'vot')
    per_sequence, summary, failures = runner.evaluate_tracker(
        StaticTracker, entries, 'vot2018', str(tmp_path / 'out'), 'st', progress=False)
    assert list(per_sequence) == ['good'] and summary is not None
    assert [f.name for f in failures] == ['bad']
    assert str(tmp_path / 'vot' / 'bad' / 'groundtruth.txt') + ', line 2' in failures[0].error


def test_eval_cli_reports_bad_sequences_and_scores_the_rest(tmp_path):
    """eval.py, running a baseline and scoring existing results: both finish, list every bad
    sequence with file and line at the end, score the good ones, exit status 1."""
    root = tmp_path / 'otb'
    make_otb_tree(root)
    out = tmp_path / 'run'
    proc = _cli('eval.py', '--baseline', 'static', '--benchmark', 'otb', '--root', root,
                '--out', out, '--noprogress')
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert f'{len(BAD_OTB)} sequence(s) failed' in proc.stderr
    tail = proc.stderr[proc.stderr.index('sequence(s) failed'):]
    for name, (_, expected) in BAD_OTB.items():
        assert f'{name}: cannot load' in tail and expected in tail, (name, tail)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert sorted(metrics['per_sequence']['static']) == ['Good', 'Good2']

    results = out / 'results' / 'OTB100' / 'static'
    scored = _cli('eval.py', '--benchmark', 'otb', '--root', root, '--results', results,
                  '--out', tmp_path / 'score')
    assert scored.returncode == 1, scored.stderr[-3000:]
    assert f'{len(BAD_OTB)} sequence(s) failed' in scored.stderr
    assert str(root / 'NanVisible' / 'groundtruth_rect.txt') + ', line 2' in scored.stderr
    rescored = json.loads((tmp_path / 'score' / 'metrics.json').read_text())
    assert sorted(rescored['per_sequence']['static']) == ['Good', 'Good2']


# --- frames: missing OTB frames, VOT layouts --------------------------------------------------

def test_otb_missing_frame_is_named(tmp_path):
    from tracking.data.benchmarks import read_otb_sequence
    import pytest

    for i in (1, 2, 4):  # 0003.jpg missing, 4 GT lines
        write_jpeg(tmp_path / 'Gap' / 'img' / f'{i:04d}.jpg')
    write_text(tmp_path / 'Gap' / 'groundtruth_rect.txt', GOOD + ['5,2,10,8'])
    with pytest.raises(ValueError, match=r'img/0003\.jpg missing'):
        read_otb_sequence(tmp_path / 'Gap')
    # Three lines for the three files: still a gap, not a silent shift of frames 3.. by one.
    write_text(tmp_path / 'Gap' / 'groundtruth_rect.txt', GOOD)
    with pytest.raises(ValueError, match=r'img/0003\.jpg missing'):
        read_otb_sequence(tmp_path / 'Gap')
    # Last frames missing (GT longer than the images), several named at once.
    for i in range(1, 4):
        write_jpeg(tmp_path / 'Tail' / 'img' / f'{i:04d}.jpg')
    write_text(tmp_path / 'Tail' / 'groundtruth_rect.txt', GOOD * 3)
    with pytest.raises(ValueError) as error:
        read_otb_sequence(tmp_path / 'Tail')
    message = str(error.value)
    assert 'img/0004.jpg, img/0005.jpg' in message and '(6 frames) missing' in message
    assert str(tmp_path / 'Tail' / 'groundtruth_rect.txt') in message


def test_vot_frame_layouts_and_where_it_looked(tmp_path):
    from tracking.data.benchmarks import read_vot_sequence
    import pytest

    layouts = {'c': 'color', 'i': 'imgs', 'j': 'img', 'flat': '.', 'v2020': 'rgb'}
    for name, folder in layouts.items():
        for i in range(1, 3):
            write_jpeg(tmp_path / name / folder / f'{i:08d}.jpg', 50 * i)
        write_text(tmp_path / name / 'groundtruth.txt', ['1,1,5,5', '2,1,5,5'])
    write_text(tmp_path / 'v2020' / 'sequence', ['channels.color=rgb/%08d.jpg', 'fps=30'])
    for name, folder in layouts.items():
        sequence = read_vot_sequence(tmp_path / name)
        assert len(sequence) == 2
        assert Path(sequence.frames[1]) == (tmp_path / name / folder / '00000002.jpg')

    (tmp_path / 'none' / 'frames').mkdir(parents=True)
    write_text(tmp_path / 'none' / 'groundtruth.txt', ['1,1,5,5'])
    with pytest.raises(ValueError) as error:
        read_vot_sequence(tmp_path / 'none')
    message = str(error.value)
    assert '0 frames' in message
    for folder in ('color', 'imgs', 'img'):
        assert str(tmp_path / 'none' / folder) in message


# --- checkpoints -------------------------------------------------------------------------------

def test_checkpoint_folders_without_a_checkpoint(tmp_path):
    from tracking.checkpoint import restore_variables
    import pytest

    (tmp_path / 'empty').mkdir()
    (tmp_path / 'work' / 'checkpoints').mkdir(parents=True)
    half = tmp_path / 'half' / 'checkpoints' / '3.orbax-checkpoint-tmp-1700000000'
    (half / 'variables').mkdir(parents=True)
    cases = {'empty': 'empty folder', 'work': 'no checkpoint step in',
             'half': 'only half-written 3.orbax-checkpoint-tmp-1700000000'}
    for name, expected in cases.items():
        with pytest.raises(FileNotFoundError) as error:
            restore_variables(str(tmp_path / name))
        assert expected in str(error.value) and str(tmp_path / name) in str(error.value)
        assert '\n' not in str(error.value)

    root = tmp_path / 'otb'
    make_otb_tree(root, bad=False)
    proc = _cli('eval.py', '--config', 'configs/grm.py:tiny', '--checkpoint', tmp_path / 'half',
                '--benchmark', 'otb', '--root', root, '--out', tmp_path / 'o')
    line = _one_line_error(proc, 'eval.py')
    assert 'cannot load --checkpoint' in line and cases['half'] in line


def test_checkpoint_of_another_model_names_checkpoint_and_config(tmp_path):
    """Unit: check_variables_match lists missing / unexpected / reshaped keys. CLI: a checkpoint
    that does not fit --config is one error before any sequence runs."""
    import jax
    import pytest
    from tracking.checkpoint import check_variables_match, save_variables

    expected = {'params': {'a': {'kernel': jax.ShapeDtypeStruct((3, 4), np.float32)},
                           'b': {'bias': jax.ShapeDtypeStruct((4,), np.float32)}}}
    good = {'params': {'a': {'kernel': np.zeros((3, 4))}, 'b': {'bias': np.zeros(4)}},
            'batch_stats': {}}
    check_variables_match(good, expected, 'ck', 'cfg')
    bad = {'params': {'a': {'kernel': np.zeros((3, 5))}, 'c': {'w': np.zeros(2)}},
           'batch_stats': {}}
    with pytest.raises(ValueError) as error:
        check_variables_match(bad, expected, 'ck', 'cfg')
    message = str(error.value)
    assert message.startswith('checkpoint ck does not fit config cfg')
    assert 'missing params/b/bias' in message and 'unexpected params/c/w' in message
    assert 'params/a/kernel [3, 5] (model [3, 4])' in message

    checkpoint = tmp_path / 'other'
    save_variables(str(checkpoint), {'params': {'conv': {'kernel': np.zeros((3, 3, 3, 8),
                                                                            np.float32)}}})
    root = tmp_path / 'otb'
    make_otb_tree(root, bad=False)
    proc = _cli('eval.py', '--config', 'configs/grm.py:tiny', '--checkpoint', checkpoint,
                '--benchmark', 'otb', '--root', root, '--out', tmp_path / 'o', '--noprogress')
    line = _one_line_error(proc, 'eval.py')
    assert str(checkpoint) in line and 'configs/grm.py:tiny' in line
    assert 'unexpected params/conv/kernel' in line and 'missing params/' in line
    assert not (tmp_path / 'o' / 'results').exists()  # Raised before any sequence ran.


# --- configs and flags -------------------------------------------------------------------------

def test_config_and_flag_errors_are_one_line(tmp_path):
    started = time.perf_counter()
    cases = [
        ('train.py', ['--config', 'configs/grm.py:tiny', '--workdir', tmp_path / 'w',
                      '--config.train.num_steps=abc'], 'num_steps=abc'),
        ('train.py', ['--config', 'configs/grm.py:tiny', '--workdir', tmp_path / 'w',
                      '--config.train.no_such_key=3'], "unknown config key 'train.no_such_key'"),
        ('train.py', ['--config', 'configs/grm.py:tiny', '--wrokdir', tmp_path / 'w'],
         "Unknown command line flag 'wrokdir'"),
        ('train.py', ['--config', 'configs/grm.py:huge', '--workdir', tmp_path / 'w'],
         "unknown variant 'huge'"),
        ('train.py', ['--config', 'configs/none.py', '--workdir', tmp_path / 'w'],
         'configs/none.py'),
        ('eval.py', ['--config', 'configs/grm.py:tiny', '--config.test.nope=1',
                     '--checkpoint', tmp_path], "unknown config key 'test.nope'"),
        ('eval.py', ['--config', 'configs/grm.py:tiny', '--config.model.depth=deep',
                     '--checkpoint', tmp_path], 'depth=deep'),
        ('eval.py', ['--benchmakr', 'otb'], "Unknown command line flag 'benchmakr'"),
        ('eval.py', ['--benchmark', 'otb', '--root', tmp_path, '--out', tmp_path / 'o',
                     '--results', tmp_path / 'not_there'],
         f'--results folder not found: {tmp_path / "not_there"}'),
    ]
    for script, args, expected in cases:
        line = _one_line_error(_cli(script, *args), script)
        assert expected in line, (script, args, line)
    assert not (tmp_path / 'w').exists()
    # Each fails before JAX is imported: ~1 s each even on a loaded 2-core machine.
    assert time.perf_counter() - started < 60


# --- silent results: warnings and the initial box --------------------------------------------

def test_warnings_and_initial_box_outside_the_frame(tmp_path, caplog):
    import cv2
    import pytest
    from tracking.data.sequence import Sequence
    from tracking.eval import runner
    from tracking.tracker import StaticTracker, run_sequence

    paths = []
    for i, (w, h) in enumerate([(32, 24), (32, 24), (40, 30), (48, 30)]):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], np.zeros((h, w, 3), np.uint8))
    boxes = np.array([[2, 2, 10, 8], [2, 2, -3, 8], [2, 2, 10, 8], [2, 2, 4, -1]], np.float32)
    sequence = Sequence('sizes', paths, boxes)
    with caplog.at_level(logging.WARNING, logger='tracking'):
        runner.load_sequences([('sizes', lambda: sequence)])
        run_sequence(StaticTracker(), sequence)
        run_sequence(StaticTracker(), sequence)  # a new run warns again, once
    negative = [r.getMessage() for r in caplog.records if 'negative width' in r.getMessage()]
    assert negative == ['sequence sizes: 2 ground-truth box(es) with negative width or height, '
                        'first in frame 1 (line 2 of the annotation file): [2.0, 2.0, -3.0, 8.0]']
    sizes = [r.getMessage() for r in caplog.records if 'differs from frame 0' in r.getMessage()]
    assert len(sizes) == 2 and sizes[0].startswith('sequence sizes, frame 2: size 40 x 30')

    for box in ([40, 2, 10, 8], [2, -20, 10, 8], [-10, 2, 10, 8]):
        outside = Sequence('far', paths[:2], np.array([box, box], np.float32))
        with pytest.raises(ValueError, match=r'sequence far: initial box .* lies outside frame 0 '
                                             r'\(32 x 24 pixels\)'):
            run_sequence(StaticTracker(), outside)
    run_sequence(StaticTracker(), Sequence('edge', paths[:2], np.array([[-9, -7, 10, 8]] * 2)))


# --- preemption: SIGINT ------------------------------------------------------------------------

TOY_CONFIG = '''
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.tracker = 'toy_bad_input'
    c.package = '__main__'  # this file, run as a script: TRACKERS and make_task below
    c.seed = 3
    c.data = ml_collections.ConfigDict(dict(samples_per_epoch=8))
    c.train = ml_collections.ConfigDict(dict(
        batch_size=4, num_epochs=1, num_steps=1000, lr=0.1, log_every_steps=1,
        checkpoint_every_steps=1000, keep_checkpoints=2, tensorboard=False, delay_s=0.05))
    return c
'''


class ToyTask:
    """A linear fit on random vectors; prints 'batch <k>' before yielding batch k."""

    def __init__(self, config):
        self.config = config

    def init_variables(self, rng):
        import jax.numpy as jnp
        return {'params': {'w': jnp.zeros((3,), jnp.float32)}}

    def make_optimizer(self, params):
        import optax
        return optax.sgd(self.config.train.lr)

    def loss_fn(self, params, model_state, batch, rng):
        import jax.numpy as jnp
        loss = jnp.mean((batch['x'] @ params['w'] - batch['y']) ** 2)
        return loss, (model_state, {})

    def train_batches(self, start_step, process_index, process_count):
        step = start_step
        while True:
            rng = np.random.default_rng(step)
            x = rng.normal(size=(self.config.train.batch_size, 3)).astype(np.float32)
            print(f'batch {step}', flush=True)
            time.sleep(self.config.train.delay_s)
            yield {'x': x, 'y': x.sum(-1)}
            step += 1


def test_sigint_saves_exits_130_and_resumes(tmp_path):
    config = tmp_path / 'toy.py'
    config.write_text(TOY_CONFIG)
    workdir = tmp_path / 'w'
    command = [sys.executable, __file__, '--config', str(config), '--workdir', str(workdir)]
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # Deterministic point: batch 3 is about to be trained.
            if line.strip() == 'batch 3':
                process.send_signal(signal.SIGINT)
                break
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    steps = [int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and 4 <= steps[0] < 1000, steps
    assert f'stopped by SIGINT after saving step {steps[0]}' in stderr
    assert 'Traceback' not in stderr

    resumed = subprocess.run(command + [f'--config.train.num_steps={steps[0] + 2}'], cwd=REPO,
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.split()[:2] == ['batch', str(steps[0])]  # Resumed, not restarted.
    assert f'resumed from {workdir / "checkpoints"} at step {steps[0]}' in resumed.stderr
    assert (workdir / 'checkpoints' / str(steps[0] + 2)).is_dir()


# This file as the tracker package of TOY_CONFIG (config.package = '__main__'; tracking.plugins).
TRACKERS = ('toy_bad_input',)


def make_task(config):
    return ToyTask(config)


def _toy_train_main():
    """train.py's command line; TOY_CONFIG's package is this file (tracker 'toy_bad_input')."""
    from absl import app

    import train
    app.run(train.main, flags_parser=train.parse_flags)


if __name__ == '__main__':
    _toy_train_main()
