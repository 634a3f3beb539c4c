"""Multi-host data-parallel training, proven on one machine: 2 processes x 2 CPU devices.

Every run here trains the real GRM task (model, loss, AdamW groups, the tf.data pair pipeline
with per-process slices) on a GRM `tiny` config made smaller still, with 3 generated synthetic
sequences in memory instead of the TFDS build. Runs happen in subprocesses that execute this
file as a script (`python tests/test_multihost.py RUN_JSON`); a multi-process run is two of
them started with the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables
that train.py reads (tracking.train.sharding.maybe_initialize_distributed), a coordinator on a
free localhost port and XLA_FLAGS=--xla_force_host_platform_device_count=2 each.

CPU collectives across processes: jax 0.10 creates its CPU client with gloo TCP collectives
whenever jax.distributed is initialised (`jax_cpu_collectives_implementation` defaults to
'gloo'), so no config update is needed; the script asserts that default.

No persistent compilation cache: with JAX_COMPILATION_CACHE_DIR shared by the launches, a
2-process launch that loaded the train step from the cache hung in its first step (process 0
never joined the step's all-reduce) in 2 of 3 tries, so every launch compiles (~20 CPU s a
process; the test needs ~200 CPU s, ~100 s on 2 idle cores).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GLOBAL_BATCH = 4
NUM_STEPS = 4
RESUME_STEP = 2
# Smaller than configs/grm.py:tiny (same as tests/test_train_loop.py's GRM test): compiling the
# train step (~20 CPU s) is most of each process's time.
CONFIG_OVERRIDES = [
    f'train.batch_size={GLOBAL_BATCH}', f'train.num_steps={NUM_STEPS}',
    f'train.checkpoint_every_steps={RESUME_STEP}', 'train.keep_checkpoints=5',
    'train.log_every_steps=1', 'train.lr_drop_epoch=1',
    'data.samples_per_epoch=8', 'data.num_parallel_calls=1', 'data.prefetch=1',
    'model.patch_size=8', 'model.depth=2', 'model.embed_dim=32', 'model.num_heads=2',
    'model.template_size=32', 'model.search_size=64', 'model.head_channels=16',
    'model.division_hidden=(16, 8)']
# Hard limit of one launch (all its processes), and of each child process on its own.
LAUNCH_TIMEOUT_S = 480


# ---------------------------------------------------------------------------------------------
# The child process (python tests/test_multihost.py RUN_JSON).
# ---------------------------------------------------------------------------------------------

def _sequences():
    from tracking.data.sequence import Sequence
    from tracking.data.synthetic import generate_sequence
    sequences = []
    for seed in range(3):
        data = generate_sequence(seed, 22, (96, 96))
        sequences.append(Sequence(f'syn{seed}', data['frames'], data['boxes'], data['visible']))
    return sequences


def _make_task(config, batch_log: list):
    """GRMTask reading generated sequences; it records every local batch it hands out."""
    from grm_jax.task import GRMTask
    from tracking.data import pairs

    class Task(GRMTask):
        def train_batches(self, start_step, process_index, process_count):
            stream = pairs.train_batches(
                [_sequences()], (1.0,), self.config.data, self.config.model,
                int(self.config.train.batch_size), int(self.config.seed), start_step,
                process_index, process_count)
            _mark('input pipeline built')
            for batch in stream:
                batch_log.append(batch)
                yield batch

    return Task(config)


def _watchdog(limit_s: float) -> None:
    """Exits this process when its parent dies or after `limit_s` (no orphans, no hangs);
    dumps every thread's stack into the log shortly before the limit."""
    import faulthandler
    faulthandler.dump_traceback_later(max(1.0, limit_s - 10), exit=False)
    parent, deadline = os.getppid(), time.monotonic() + limit_s

    def watch():
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _mark(what: str) -> None:
    print(f'[{time.monotonic() - _START:6.1f} s, cpu {time.process_time():5.1f} s] {what}',
          flush=True)


def _child(run: dict) -> None:
    _watchdog(run['timeout_s'])
    _mark('started')
    import jax

    from tracking.train import sharding
    distributed = sharding.maybe_initialize_distributed()
    assert distributed == (run['num_processes'] > 1)
    assert jax.config.jax_cpu_collectives_implementation == 'gloo'
    assert jax.process_count() == run['num_processes'], jax.process_count()
    assert jax.device_count() == 4 and jax.local_device_count() == 4 // run['num_processes']
    _mark(f'process {jax.process_index()} of {jax.process_count()}: {jax.devices()}')

    from tracking.config import load_config
    from tracking.train.loop import train
    config = load_config(str(REPO / 'configs/grm.py:tiny'), run['overrides'])
    with config.unlocked():
        config.train.tensorboard = False
    batches, metrics = [], {}

    def on_step_metrics(step, values):
        metrics[step] = values
        _mark(f'step {step}: {values}')

    state = train(config, run['workdir'], _make_task(config, batches),
                  on_step_metrics=on_step_metrics)
    params = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
    arrays = {f'param{jax.tree_util.keystr(path)}': np.asarray(value) for path, value in params}
    used = batches[:int(state.step) - run['start_step']]  # the pipeline prefetches ahead
    for i, batch in enumerate(used):
        for key, value in batch.items():
            arrays[f'batch{run["start_step"] + i}/{key}'] = value
    out = f'{run["out"]}.{jax.process_index()}'
    np.savez(out + '.npz', **arrays)
    Path(out + '.json').write_text(json.dumps(
        {'metrics': {str(k): v for k, v in metrics.items()}, 'step': int(state.step),
         'process_index': jax.process_index()}))


# ---------------------------------------------------------------------------------------------
# The parent (pytest).
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(tmp: Path, name: str, workdir: str, num_processes: int, start_step: int,
            num_steps: int, overrides: tuple = ()) -> list[dict]:
    """Runs one training launch of `num_processes` processes (4 CPU devices in all) in
    tmp/workdir until step `num_steps`; `start_step`: the step it resumes from.

    Returns each process's {'losses', 'step', 'process_index', 'npz'}. Every child is killed
    (SIGKILL) if any of them fails or the launch passes LAUNCH_TIMEOUT_S.
    """
    port = _free_port()
    run = dict(overrides=CONFIG_OVERRIDES + [f'train.num_steps={num_steps}', *overrides],
               workdir=str(tmp / workdir), out=str(tmp / f'{name}.out'),
               num_processes=num_processes, start_step=start_step, timeout_s=LAUNCH_TIMEOUT_S)
    children = []
    try:
        for process_id in range(num_processes):
            env = dict(os.environ)
            env.update(
                XLA_FLAGS=f'--xla_force_host_platform_device_count={4 // num_processes}',
                JAX_PLATFORMS='cpu', PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
            env.pop('JAX_COMPILATION_CACHE_DIR', None)  # see the module docstring
            for var in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID',
                        'JAX_DISTRIBUTED_AUTO'):
                env.pop(var, None)
            if num_processes > 1:
                env.update(JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
                           JAX_NUM_PROCESSES=str(num_processes), JAX_PROCESS_ID=str(process_id))
            log_path = tmp / f'{name}.{process_id}.log'
            with open(log_path, 'w') as log:
                child = subprocess.Popen([sys.executable, __file__, json.dumps(run)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            children.append((child, log_path))
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while any(child.poll() is None for child, _ in children):
            failed = [(c, p) for c, p in children if c.poll() not in (None, 0)]
            assert not failed, _logs(failed, f'{name}: a process failed')
            assert time.monotonic() < deadline, _logs(children, f'{name}: timed out')
            time.sleep(0.1)
        failed = [(c, p) for c, p in children if c.returncode != 0]
        assert not failed, _logs(failed, f'{name}: a process failed')
    finally:
        for child, _ in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            child.wait()
    return _results(tmp, name, num_processes)


def _results(tmp: Path, name: str, num_processes: int) -> list[dict]:
    """What each process of launch `name` wrote (see `_child`)."""
    results = []
    for process_id in range(num_processes):
        out = tmp / f'{name}.out.{process_id}'
        result = json.loads(Path(f'{out}.json').read_text())
        result['npz'] = dict(np.load(f'{out}.npz'))
        result['metrics'] = {int(k): v for k, v in result['metrics'].items()}
        result['losses'] = {k: v['loss'] for k, v in result['metrics'].items()}
        results.append(result)
    return results


def _logs(children, message: str) -> str:
    tails = [f'--- {path.name} (rc {child.returncode}) ---\n{path.read_text()[-3000:]}'
             for child, path in children]
    return message + '\n' + '\n'.join(tails)


def _params(result: dict) -> dict:
    return {k: v for k, v in result['npz'].items() if k.startswith('param')}


def _global_batch(results: list[dict], step: int) -> dict:
    """Process slices of batch `step` concatenated in process order."""
    keys = sorted({k.split('/', 1)[1] for k in results[0]['npz'] if k.startswith(f'batch{step}/')})
    return {k: np.concatenate([r['npz'][f'batch{step}/{k}'] for r in results]) for k in keys}


def _gradient_is_rounding_noise(key: str) -> bool:
    """Box-head conv biases: a BatchNorm follows each, so their true gradient is 0 and the
    computed one is rounding noise, which differs with the all-reduce's summation order."""
    return key.startswith("param['box_head']") and key.endswith("['conv']['bias']")


def _checkpoint_entries(workdir: Path) -> dict:
    """{relative path: size} of every file under workdir/checkpoints."""
    root = workdir / 'checkpoints'
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob('*') if p.is_file()}


def test_two_processes_match_one_process_and_resume(tmp_path):
    """(a) 2 processes x 2 devices train like 1 process x 4 devices; (b) their checkpoints are
    written once; (c) a second 2-process launch resumes from the step-2 checkpoint and ends
    bit for bit where the uninterrupted 2-process run ends.

    Launches: `single` (1 process, steps 0-3), `multi` (2 processes, steps 0-3, checkpoints at
    2 and 4), `resumed` (2 processes, a workdir holding only multi's step-2 checkpoint, as after
    a crash between the checkpoints; steps 2-3).

    Tolerances. Input batches: exact. (a) Every metric of every step (loss, focal, GIoU, L1,
    IoU, gradient norm, ...): rtol 1e-5; parameters after 4 AdamW steps: rtol 1e-5, atol 2e-5.
    Both runs execute the same SPMD program on 4 CPU devices with the same global batch and
    keys, but XLA's in-process all-reduce and gloo's cross-process all-reduce add the partial
    sums in different orders, so values differ in the last bits: measured, metrics within
    8e-7 relative (25 of 92 parameter arrays bit-identical), parameters within 4.8e-6
    absolute. Exception: the box head's conv biases, each followed by BatchNorm, have a true
    gradient of 0, so theirs is rounding noise that AdamW scales to steps of up to lr; they are
    held to |difference| <= 2 lr x steps. The two processes hold bit-identical metrics and
    parameters (replicated). (c): exact (rtol = atol = 0): the same program on the same inputs
    and the same restored state.
    """
    single = _launch(tmp_path, 'single', 'single', 1, 0, NUM_STEPS,
                     ['train.checkpoint_every_steps=100'])[0]  # only the final save
    multi = _launch(tmp_path, 'multi', 'multi', 2, 0, NUM_STEPS)
    multi_files = _checkpoint_entries(tmp_path / 'multi')
    (tmp_path / 'resumed' / 'checkpoints').mkdir(parents=True)
    shutil.copytree(tmp_path / 'multi' / 'checkpoints' / str(RESUME_STEP),
                    tmp_path / 'resumed' / 'checkpoints' / str(RESUME_STEP))
    resumed = _launch(tmp_path, 'resumed', 'resumed', 2, RESUME_STEP, NUM_STEPS)
    _check_runs(tmp_path, single, multi, resumed, multi_files)


def _check_runs(tmp_path: Path, single: dict, multi: list[dict], resumed: list[dict],
                multi_files: dict) -> None:
    """The checks of test_two_processes_match_one_process_and_resume on its launches."""

    # Input: each process fed its own half of every global batch, and the halves make up the
    # single-process global batch (global sample indices step * B ... step * B + B - 1).
    for step in range(NUM_STEPS):
        alone = _global_batch([single], step)
        np.testing.assert_array_equal(alone['index'], np.arange(step * 4, step * 4 + 4))
        for launch in (multi, resumed) if step >= RESUME_STEP else (multi,):
            assert [r['npz'][f'batch{step}/index'].shape[0] for r in launch] == [2, 2]
            joined = _global_batch(launch, step)
            assert sorted(joined) == sorted(alone)
            for key in alone:
                np.testing.assert_array_equal(joined[key], alone[key],
                                              err_msg=f'batch {step} {key}')

    # (a) Every step's metrics on both processes, and the final parameters, match 1 process.
    assert [r['step'] for r in (single, *multi, *resumed)] == [NUM_STEPS] * 5
    assert sorted(single['metrics']) == list(range(NUM_STEPS))
    losses = [single['losses'][s] for s in range(NUM_STEPS)]
    assert all(np.isfinite(losses)) and len(set(losses)) == NUM_STEPS, losses  # it trains
    for result in multi:
        assert sorted(result['metrics']) == list(range(NUM_STEPS))
        for step, values in result['metrics'].items():
            assert values == multi[0]['metrics'][step]  # replicated: the same on every process
            assert sorted(values) == sorted(single['metrics'][step])
            for name, value in values.items():
                np.testing.assert_allclose(value, single['metrics'][step][name], rtol=1e-5,
                                           err_msg=f'step {step} {name}')
    final = _params(single)
    for result in multi:
        assert sorted(_params(result)) == sorted(final)
        for key, value in _params(result).items():
            np.testing.assert_array_equal(value, _params(multi[0])[key], err_msg=key)
            if _gradient_is_rounding_noise(key):
                # AdamW turns a noise gradient into steps of up to lr in either direction.
                lr = float(single['metrics'][0]['lr'])
                np.testing.assert_allclose(value, final[key], rtol=0, atol=2 * lr * NUM_STEPS,
                                           err_msg=key)
            else:
                np.testing.assert_allclose(value, final[key], rtol=1e-5, atol=2e-5, err_msg=key)

    # (b) Checkpoints written once by the orbax multi-process protocol: one folder per step, no
    # temporary or duplicate folders, one commit marker per step and item (written by process 0
    # after both processes finished); each process wrote its share of the arrays into its own
    # ocdbt.process_<i> folder (orbax splits a replicated array between its replicas); the
    # files read back in 1 process on 1 device as the trained state.
    root = tmp_path / 'multi' / 'checkpoints'
    assert sorted(p.name for p in root.iterdir()) == [str(RESUME_STEP), str(NUM_STEPS)]
    assert not [k for k in multi_files if 'tmp' in k], sorted(multi_files)
    for step in (RESUME_STEP, NUM_STEPS):
        files = [k for k in multi_files if k.startswith(f'{step}/')]
        assert sorted(k for k in files if k.endswith('commit_success.txt')) == [
            f'{step}/commit_success.txt', f'{step}/training/commit_success.txt',
            f'{step}/variables/commit_success.txt'], sorted(files)
        assert [k for k in files if k.endswith('_CHECKPOINT_METADATA')] == [
            f'{step}/_CHECKPOINT_METADATA']
        for item in ('variables', 'training'):
            folders = {k.split('/')[2] for k in files if k.startswith(f'{step}/{item}/ocdbt.')}
            assert folders == {'ocdbt.process_0', 'ocdbt.process_1'}, folders
    from tracking.checkpoint import restore_variables
    restored = restore_variables(str(tmp_path / 'multi'))
    import jax
    for path, value in jax.tree_util.tree_flatten_with_path(restored['params'])[0]:
        key = f'param{jax.tree_util.keystr(path)}'
        np.testing.assert_array_equal(value, _params(multi[0])[key], err_msg=key)

    # (c) Resumed from step 2 by both processes: steps 2 and 3 and the final parameters are
    # exactly those of the uninterrupted 2-process run.
    for result in resumed:
        assert sorted(result['metrics']) == list(range(RESUME_STEP, NUM_STEPS))
        for step, values in result['metrics'].items():
            assert values == multi[0]['metrics'][step], (step, values, multi[0]['metrics'][step])
        assert sorted(_params(result)) == sorted(final)
        for key, value in _params(result).items():
            np.testing.assert_array_equal(value, _params(multi[0])[key], err_msg=key)
    assert sorted(p.name for p in (tmp_path / 'resumed' / 'checkpoints').iterdir()) == [
        str(RESUME_STEP), str(NUM_STEPS)]


if __name__ == '__main__':
    _START = time.monotonic()
    _child(json.loads(sys.argv[1]))
