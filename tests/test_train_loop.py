"""Tests of tracking/train/loop.py, tracking/train/sharding.py, tracking/checkpoint.py, train.py.

They use a toy task (a tiny MLP with BatchNorm and dropout on uint8 "images", a deterministic
batch stream) so that every test takes seconds. Multi-device and kill/restart runs happen in
subprocesses that run this file as a script
(`python tests/test_train_loop.py CONFIG_JSON WORKDIR DEVICE_COUNT [KILL_AT_BATCH]`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import optax  # noqa: E402

IMAGE_SHAPE = (4, 4, 3)


def toy_config(**train_overrides) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.tracker = 'toy'
    c.seed = 7
    c.data = ml_collections.ConfigDict(dict(samples_per_epoch=64))
    c.train = ml_collections.ConfigDict(dict(
        batch_size=8, num_epochs=1, num_steps=6, lr=0.05, log_every_steps=2,
        checkpoint_every_steps=3, keep_checkpoints=2, tensorboard=False))
    c.toy = ml_collections.ConfigDict(dict(nan_step=-1))
    c.train.update(train_overrides)
    return c


class ToyMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(16)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(1)(x)[:, 0]


class ToyTask:
    """A training task in the form tracking/train/loop.py expects."""

    def __init__(self, config):
        self.config = config
        self.model = ToyMLP()

    def init_variables(self, rng):
        x = jnp.zeros((2, int(np.prod(IMAGE_SHAPE))), jnp.float32)
        return dict(self.model.init({'params': rng}, x, train=False))

    def learning_rate(self, step):
        return self.config.train.lr * 0.5 ** (step // 4)

    def make_optimizer(self, params):
        return optax.chain(optax.clip_by_global_norm(1.0),
                           optax.sgd(self.learning_rate, momentum=0.9))

    def loss_fn(self, params, model_state, batch, rng):
        x = batch['image'].astype(jnp.float32).reshape(batch['image'].shape[0], -1) / 255.0
        pred, new_state = self.model.apply(
            {'params': params, **model_state}, x, train=True, rngs={'dropout': rng},
            mutable=['batch_stats'])
        loss = jnp.mean((pred - batch['target']) ** 2)
        return loss, (new_state, {'mse': loss, 'pred_mean': jnp.mean(pred)})

    def train_batches(self, start_step, process_index, process_count):
        batch_size = self.config.train.batch_size
        per_process = batch_size // process_count
        step = start_step
        while True:
            rng = np.random.default_rng((self.config.seed, step))
            image = rng.integers(0, 256, (batch_size,) + IMAGE_SHAPE, dtype=np.uint8)
            target = image.reshape(batch_size, -1)[:, :3].mean(-1).astype(np.float32) / 255.0
            if step == self.config.toy.nan_step:
                target[3] = np.nan
            index = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int32)
            rows = slice(process_index * per_process, (process_index + 1) * per_process)
            yield {'image': image[rows], 'target': target[rows], 'index': index[rows]}
            step += 1


def _script_env(device_count: int = 1) -> dict:
    env = dict(os.environ)
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={device_count}'
    env['JAX_PLATFORMS'] = 'cpu'
    env['PYTHONPATH'] = str(REPO)
    return env


def _start_script(config, workdir: Path, device_count: int = 1,
                  kill_at_batch: int | None = None) -> subprocess.Popen:
    """Runs train() with the toy task in a subprocess; its output goes to <workdir>.log.

    kill_at_batch: the subprocess SIGKILLs itself when train() asks for that batch (see _main).
    """
    log = open(f'{workdir}.log', 'w')
    extra = [] if kill_at_batch is None else [str(kill_at_batch)]
    process = subprocess.Popen(
        [sys.executable, __file__, config.to_json(), str(workdir), str(device_count), *extra],
        env=_script_env(device_count), stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    process.log_path = f'{workdir}.log'
    return process


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    process.wait(timeout=timeout)
    out = Path(process.log_path).read_text()
    assert process.returncode == 0, out[-4000:]
    return out


def _assert_trees_close(a, b, rtol, atol):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_four_devices_match_one_device(tmp_path):
    """Data-parallel steps on 4 virtual CPU devices give the single-device result.

    Under jit the global batch is one sharded array, so the loss mean and the BatchNorm batch
    statistics are over the whole global batch on 4 devices too (unlike per-GPU BN in PyTorch
    DDP); the dropout masks come from the same key. Only the summation order differs.
    """
    from tracking.checkpoint import restore_variables
    config = toy_config(num_steps=3, checkpoint_every_steps=100)
    one = _start_script(config, tmp_path / 'one', device_count=1)
    four = _start_script(config, tmp_path / 'four', device_count=4)
    _finish(one)
    assert 'devices=4' in _finish(four)
    v1, v4 = restore_variables(tmp_path / 'one'), restore_variables(tmp_path / 'four')
    init = ToyTask(config).init_variables(jax.random.split(jax.random.PRNGKey(config.seed))[0])
    assert not np.allclose(v1['params']['Dense_0']['kernel'], init['params']['Dense_0']['kernel'])
    _assert_trees_close(v1, v4, rtol=1e-6, atol=1e-7)


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    """SIGKILL at a known point (after checkpoint 4 is on disk, when batch 6 is requested, so
    updates 4 and 5 are lost), then a restart: the result equals an uninterrupted run exactly."""
    from tracking.checkpoint import restore_variables
    from tracking.train.loop import train
    config = toy_config(num_steps=12, checkpoint_every_steps=4, tensorboard=True)
    child = ml_collections.ConfigDict(config.to_dict())
    child.train.tensorboard = False
    killed = _start_script(child, tmp_path / 'resumed', kill_at_batch=6)
    try:
        uninterrupted = train(config, str(tmp_path / 'straight'), ToyTask(config))
        killed.wait(timeout=300)   # a safety net only: the child kills itself after 6 batches
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    log = Path(killed.log_path).read_text()
    assert killed.returncode == -signal.SIGKILL, log[-4000:]
    assert 'SIGKILL at batch 6' in log and 'devices=' not in log, log[-4000:]
    checkpoints = tmp_path / 'resumed' / 'checkpoints'
    steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    assert steps == [4], steps
    resumed = train(config, str(tmp_path / 'resumed'), ToyTask(config))

    assert int(resumed.step) == int(uninterrupted.step) == 12
    _assert_trees_close(resumed.params, uninterrupted.params, rtol=0, atol=0)
    _assert_trees_close(resumed.model_state, uninterrupted.model_state, rtol=0, atol=0)
    _assert_trees_close(resumed.opt_state, uninterrupted.opt_state, rtol=0, atol=0)
    restored = restore_variables(tmp_path / 'straight')
    _assert_trees_close(restored['params'], uninterrupted.params, rtol=0, atol=0)
    # keep_checkpoints=2: steps 8 and 12 remain; config.json and TensorBoard events written.
    kept = sorted(int(p.name) for p in (tmp_path / 'straight' / 'checkpoints').iterdir()
                  if p.name.isdigit())
    assert kept == [8, 12]
    assert json.loads((tmp_path / 'straight' / 'config.json').read_text())['train'][
        'num_steps'] == 12
    assert list((tmp_path / 'straight' / 'tensorboard').glob('events.out.tfevents.*'))


def test_nan_loss_names_step_and_samples(tmp_path):
    import pytest
    from tracking.train.loop import train
    config = toy_config(num_steps=6)
    config.toy.nan_step = 4
    with pytest.raises(FloatingPointError) as error:
        train(config, str(tmp_path / 'nan'), ToyTask(config))
    message = str(error.value)
    assert 'at step 4 ' in message, message
    assert str(list(range(32, 40))) in message, message
    # The checkpoint at step 3 is kept, nothing after the failure was saved.
    steps = sorted(int(p.name) for p in (tmp_path / 'nan' / 'checkpoints').iterdir()
                   if p.name.isdigit())
    assert steps == [3]


def test_sigterm_saves_and_stops(tmp_path):
    from tracking.checkpoint import restore_variables
    from tracking.train.loop import train

    config = toy_config(num_steps=50, checkpoint_every_steps=1000)

    class Terminating(ToyTask):
        def train_batches(self, start_step, process_index, process_count):
            for i, batch in enumerate(super().train_batches(start_step, process_index,
                                                            process_count)):
                if i == 5:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield batch

    state = train(config, str(tmp_path / 'term'), Terminating(config))
    assert int(state.step) == 6
    steps = [int(p.name) for p in (tmp_path / 'term' / 'checkpoints').iterdir()
             if p.name.isdigit()]
    assert steps == [6]
    _assert_trees_close(restore_variables(tmp_path / 'term')['params'], state.params, 0, 0)


def test_shard_batch_rejects_indivisible_batch():
    import pytest
    from tracking.train import sharding

    mesh = sharding.make_mesh()
    batch = sharding.shard_batch({'x': np.arange(6, dtype=np.int64).reshape(3, 2)}, mesh)
    assert batch['x'].shape == (3, 2) and batch['x'].dtype == jnp.int32
    with pytest.raises(ValueError, match='multiple of the number of devices'):
        sharding.check_global_batch(3, sharding.make_mesh(jax.devices() * 2), 1)
    assert not sharding.maybe_initialize_distributed({})
    with pytest.raises(ValueError, match='JAX_PROCESS_ID'):
        sharding.maybe_initialize_distributed({'JAX_COORDINATOR_ADDRESS': 'x:1',
                                               'JAX_NUM_PROCESSES': '2'})


def test_save_and_restore_variables(tmp_path):
    from tracking.checkpoint import restore_variables, save_variables
    variables = {'params': {'a': {'kernel': np.arange(6, dtype=np.float32).reshape(2, 3)}},
                 'batch_stats': {'bn': {'mean': np.full((3,), 0.5, np.float32)}}}
    save_variables(str(tmp_path / 'v'), variables)
    restored = restore_variables(str(tmp_path / 'v'))
    _assert_trees_close(restored, variables, 0, 0)
    assert isinstance(restored['params']['a']['kernel'], np.ndarray)
    save_variables(str(tmp_path / 'w'), {'params': variables['params'], 'batch_stats': {}})
    assert restore_variables(str(tmp_path / 'w'))['batch_stats'] == {}


def test_train_py_unknown_config_key_names_it(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / 'train.py'), '--config', str(REPO / 'configs/grm.py:tiny'),
         '--workdir', str(tmp_path / 'w'), '--config.train.lr=1e-3',
         '--config.train.not_a_key=3'],
        env=_script_env(), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode != 0
    assert "unknown config key 'train.not_a_key'" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / 'w').exists()


def test_grm_task_two_steps_tiny():
    """Two GRM train steps (tiny config, made smaller) on a fake batch: finite loss terms; the
    first AdamW step (no weight decay) moves a parameter by ~its group's lr where its gradient is
    well above eps, and not at all where the gradient is zero: the division MLPs get gradients,
    the head and division MLPs run at lr and the rest of the backbone at lr x 0.1."""
    from grm_jax.task import GRMTask, param_groups
    from tracking.config import load_config
    from tracking.data.targets import gaussian_heatmap
    from tracking.train import loop, sharding

    config = load_config(str(REPO / 'configs/grm.py:tiny'), [
        'train.batch_size=2', 'train.backbone_lr_mult=0.1', 'train.weight_decay=0.0',
        'model.patch_size=8', 'model.depth=2', 'model.embed_dim=32', 'model.num_heads=2', 'model.template_size=32',
        'model.search_size=64', 'model.head_channels=16', 'model.division_hidden=(16, 8)'])
    task = GRMTask(config)
    rng = np.random.default_rng(0)
    box = np.array([[0.4, 0.35, 0.2, 0.25], [0.3, 0.4, 0.3, 0.2]], np.float32)
    batch = dict(template=rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
                 search=rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8),
                 search_box=box, heatmap=gaussian_heatmap(box, 8).astype(np.float32),
                 index=np.arange(2))
    variables = task.init_variables(jax.random.PRNGKey(0))
    before = jax.device_get(variables['params'])
    mesh = sharding.make_mesh()
    optimizer = task.make_optimizer(variables['params'])
    state = loop.create_train_state(variables, optimizer, jax.random.PRNGKey(1), mesh)
    train_step = loop.make_train_step(task, optimizer, mesh)
    state, first = train_step(state, sharding.shard_batch(batch, mesh))
    after = jax.device_get(state.params)
    state, second = train_step(state, sharding.shard_batch(batch, mesh))
    for metrics in (first, second):
        for name in ('loss', 'giou', 'l1', 'focal', 'grad_norm'):
            assert np.isfinite(float(metrics[name])), (name, metrics)
    assert float(first['lr']) == np.float32(config.train.lr)

    moves = {}  # group -> list of (path, |update| / lr)
    for (path, group), b, a in zip(jax.tree_util.tree_flatten_with_path(
            param_groups(before))[0], jax.tree.leaves(before), jax.tree.leaves(after)):
        moves.setdefault(group, []).append(
            (jax.tree_util.keystr(path), np.abs(a - b).ravel() / config.train.lr))
    median = {g: float(np.median(np.concatenate([m for _, m in v]))) for g, v in moves.items()}
    assert set(median) == {'head', 'backbone', 'division'}
    assert 0.5 < median['head'] <= 1.0001, median
    assert 0.05 < median['backbone'] <= 0.10001, median
    # Division MLP gradients are small (~1e-7 before clipping; the decision enters the
    # attention through the straight-through Gumbel estimator), but non-zero everywhere, and the
    # output bias (largest gradient) moves by the full lr, not lr x 0.1.
    assert len(moves['division']) == 6
    for path, move in moves['division']:
        assert np.all(move > 0), path
    output_bias = dict(moves['division'])[
        "['backbone']['blocks_1']['attn']['divide_predict']['dense2']['bias']"]
    assert np.all(output_bias > 0.5), output_bias


class _KillAtBatch(ToyTask):
    """The toy task of a subprocess that SIGKILLs itself when train() asks for batch `kill_at`.

    Checkpoint saves are made synchronous (the manager waits after each save), so every
    checkpoint before the kill is complete on disk and none after it was started: the kill point
    is exact, whatever the timing.
    """

    def __init__(self, config, kill_at: int):
        super().__init__(config)
        self.kill_at = kill_at

    def train_batches(self, start_step, process_index, process_count):
        for step, batch in enumerate(
                super().train_batches(start_step, process_index, process_count), start_step):
            if step == self.kill_at:
                print(f'SIGKILL at batch {step}', flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch


def _synchronous_checkpoints() -> None:
    """Makes tracking.checkpoint.make_manager return managers whose save() waits until written."""
    from tracking import checkpoint
    make_manager = checkpoint.make_manager

    def make_waiting_manager(*args, **kwargs):
        manager = make_manager(*args, **kwargs)
        save = manager.save

        def save_and_wait(*save_args, **save_kwargs):
            started = save(*save_args, **save_kwargs)
            manager.wait()
            return started

        manager.save = save_and_wait
        return manager

    checkpoint.make_manager = make_waiting_manager


def _main(config_json: str, workdir: str, device_count: str, kill_at_batch: str = '') -> None:
    assert jax.device_count() == int(device_count), jax.devices()
    from tracking.train.loop import train
    config = ml_collections.ConfigDict(json.loads(config_json))
    if kill_at_batch:
        _synchronous_checkpoints()
        task = _KillAtBatch(config, int(kill_at_batch))
    else:
        task = ToyTask(config)
    train(config, workdir, task)
    print(f'devices={jax.device_count()}', flush=True)


if __name__ == '__main__':
    _main(*sys.argv[1:5])
