"""Generic data-parallel training loop for any training task.

A task provides (see docs/architecture.md):

    task.init_variables(rng) -> {'params': ..., 'batch_stats': ...}
    task.make_optimizer(params) -> optax.GradientTransformation
    task.loss_fn(params, model_state, batch, rng) -> (loss, (new_model_state, metrics))
    task.train_batches(start_step, process_index, process_count) -> iterator of numpy batches
    task.learning_rate(step) -> scalar                      # optional, only for logging
    task.phase_starts -> tuple of steps                      # optional, see below

Phases: a task whose training changes structurally at some steps (e.g. SiamRPN++ unfreezing
its backbone) lists those steps in `phase_starts`; steps before the first are phase 0, and so
on. The loop then calls `task.loss_fn(..., phase=p)` with the (static) phase of each step and
compiles one train step per phase. The optimizer is one transformation for all phases (its
state must keep one structure, so checkpoints restore anywhere).

`model_state` is every variable collection except 'params' (e.g. {'batch_stats': ...}). Batches
are dicts of numpy arrays holding this process's rows of the global batch; images stay uint8 and
the task normalises them on device. An optional batch['index'] [B] int holds sample indices, used
to name the offending samples when the loss stops being finite.

Step numbering: "step s" (0-based) is the update that consumes batch s of the input stream and
turns a state with `state.step == s` into one with `state.step == s + 1`. A checkpoint named k
holds the state after k updates, so training resumes with batch k. The step rng is
`fold_in(state.rng, state.step)`, so a resumed run reproduces an uninterrupted one exactly.

Under jit the whole global batch is one array sharded over devices, so reductions in the loss
(means, and BatchNorm batch statistics) are over the global batch, whatever the device count.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tracking import checkpoint as checkpoint_lib
from tracking.train import sharding as sharding_lib


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training.

    step: int32 [] number of updates done; params / model_state / opt_state: PyTrees;
    rng: uint32 [2] base key, constant (per-step keys are fold_in(rng, step)).
    """
    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array


def num_train_steps(config) -> int:
    """config.train.num_steps if > 0, else num_epochs * samples_per_epoch // batch_size."""
    if config.train.num_steps > 0:
        return int(config.train.num_steps)
    return int(config.train.num_epochs * config.data.samples_per_epoch // config.train.batch_size)


def create_train_state(variables: dict, optimizer: optax.GradientTransformation,
                       rng: jax.Array, mesh) -> TrainState:
    """Initial state on the mesh (every leaf replicated).

    variables: {'params': ..., <other collections>} from task.init_variables;
    rng: uint32 [2] base training key.
    """
    if 'params' not in variables:
        raise KeyError(f"init_variables returned {sorted(variables)}; it needs a 'params' entry")
    params = variables['params']
    model_state = {k: v for k, v in variables.items() if k != 'params'}
    replicated = sharding_lib.replicated(mesh)
    params, model_state = jax.device_put((params, model_state), replicated)
    opt_state = jax.jit(optimizer.init, out_shardings=replicated)(params)
    step, rng = jax.device_put((jnp.zeros((), jnp.int32), rng), replicated)
    return TrainState(step=step, params=params, model_state=model_state, opt_state=opt_state,
                      rng=rng)


def phase_of(task, step: int) -> int | None:
    """The task's phase at `step` (number of `task.phase_starts` <= step), None without phases."""
    starts = getattr(task, 'phase_starts', None)
    if starts is None:
        return None
    return sum(int(step) >= int(s) for s in starts)


def make_train_step(task, optimizer: optax.GradientTransformation, mesh,
                    phase: int | None = None) -> Callable:
    """Jitted `train_step(state, batch) -> (state, metrics)`; the input state is donated.

    Parameters and state are replicated, batch entries are sharded on 'data'. metrics: dict of
    float32 [] with the task's metrics plus 'loss', 'grad_norm' (before clipping) and 'lr' (if the
    task has learning_rate). phase: passed to task.loss_fn as `phase=` when not None.
    """
    learning_rate = getattr(task, 'learning_rate', None)
    loss_fn = task.loss_fn if phase is None else functools.partial(task.loss_fn, phase=phase)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        step_rng = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (new_model_state, metrics)), grads = grad_fn(
            state.params, state.model_state, batch, step_rng)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics)
        metrics['loss'] = loss
        metrics['grad_norm'] = optax.global_norm(grads)
        if learning_rate is not None:
            metrics['lr'] = jnp.asarray(learning_rate(state.step), jnp.float32)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        new_state = state.replace(step=state.step + 1, params=params,
                                  model_state=new_model_state, opt_state=opt_state)
        return new_state, metrics

    replicated = sharding_lib.replicated(mesh)
    return jax.jit(train_step,
                   in_shardings=(replicated, sharding_lib.data_sharding(mesh)),
                   out_shardings=(replicated, replicated),
                   donate_argnums=(0,))


def train(config, workdir: str, task,
          on_stop: Callable[[int, int], None] | None = None,
          on_step_metrics: Callable[[int, dict], None] | None = None) -> TrainState:
    """Trains `task` for num_train_steps(config) steps in `workdir`; returns the final state.

    Resumes from the newest checkpoint in workdir/checkpoints. Saves every
    config.train.checkpoint_every_steps (keeping config.train.keep_checkpoints) and at the end.
    On SIGTERM or SIGINT (preemption, Ctrl-C) it saves at the next step boundary, calls
    `on_stop(signal number, saved step)` if given, and returns early; a second SIGINT raises
    KeyboardInterrupt at once (no save). Raises FloatingPointError
    naming the step and sample indices when the loss is not finite.

    on_step_metrics: optional `f(step, metrics)` called on every process after step `step`
    (0-based) with its metrics as host floats (dict name -> float; 'loss' included).
    On a multi-process job every process runs this same call; TensorBoard, the progress bar and
    the per-step log lines are written by process 0 only.
    """
    workdir = os.path.abspath(workdir)
    process_index, process_count = jax.process_index(), jax.process_count()
    is_chief = process_index == 0
    mesh = sharding_lib.make_mesh()
    sharding_lib.check_global_batch(config.train.batch_size, mesh, process_count)
    num_steps = num_train_steps(config)
    log_every = max(1, int(config.train.log_every_steps))
    if is_chief:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, 'config.json'), 'w') as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    variables = task.init_variables(init_rng)
    optimizer = task.make_optimizer(variables['params'])
    state = create_train_state(variables, optimizer, train_rng, mesh)
    del variables

    manager = checkpoint_lib.make_manager(workdir, config.train.keep_checkpoints,
                                          config.train.checkpoint_every_steps)
    restored = manager.restore_latest(_abstract(state))
    start_step = 0
    if restored is not None:
        start_step, state = restored
        logging.info('resumed from %s at step %d', manager.directory, start_step)
    train_steps = {}  # phase -> compiled step

    def train_step(state, batch, step):
        phase = phase_of(task, step)
        if phase not in train_steps:
            if phase is not None:
                logging.info('step %d: training phase %d', step, phase)
            train_steps[phase] = make_train_step(task, optimizer, mesh, phase)
        return train_steps[phase](state, batch)

    stopper = _StopSignals()
    stopped = None  # (signal number, saved step) when a signal stopped training
    writer = _SummaryWriter(os.path.join(workdir, 'tensorboard'),
                            enabled=is_chief and config.train.get('tensorboard', True))
    progress = _progress_bar(is_chief, start_step, num_steps)
    window = _MetricWindow()
    batches = iter(task.train_batches(start_step, process_index, process_count)) \
        if start_step < num_steps else iter(())
    pending = None  # (step, device metrics, host indices) of the last dispatched step

    def finish_step(item):
        """Fetches the metrics of a dispatched step, checks the loss, logs."""
        step, metrics, indices = item
        metrics = jax.device_get(metrics)
        loss = float(metrics['loss'])
        if not np.isfinite(loss):
            raise FloatingPointError(
                f'non-finite loss {loss} at step {step} (batch {step} of the input stream, '
                f'state step {step} -> {step + 1}); sample indices of that batch: '
                f'{_global_indices(indices, process_count)}')
        window.add(metrics)
        if on_step_metrics is not None:
            on_step_metrics(step, {k: float(v) for k, v in metrics.items()})
        done = step + 1
        progress.update(1)
        if done % log_every == 0 or done == num_steps:
            means, steps_per_sec = window.pop()
            means['steps_per_sec'] = steps_per_sec
            writer.scalars(done, means)
            progress.set_postfix(loss=f'{means["loss"]:.4f}', refresh=False)
            if is_chief:
                logging.info('step %d: %s', done,
                             ', '.join(f'{k}={v:.5g}' for k, v in sorted(means.items())))

    try:
        with stopper:
            for step in range(start_step, num_steps):
                try:
                    batch_np = next(batches)
                except StopIteration:
                    raise RuntimeError(f'the input stream ended at step {step} of {num_steps}')
                batch = sharding_lib.shard_batch(batch_np, mesh)
                state, metrics = train_step(state, batch, step)
                if pending is not None:
                    finish_step(pending)
                pending = (step, metrics, batch_np.get('index'))
                done = step + 1
                stop = _stop_requested(stopper, done, log_every, process_count)
                if stop or done == num_steps or manager.should_save(done):
                    finish_step(pending)  # never save a state whose loss was not finite
                    pending = None
                    manager.save(done, state, force=True)
                if stop:
                    stopped = (stopper.signum or signal.SIGTERM, done)
                    logging.warning('%s: saved step %d in %s; stopping',
                                    signal.Signals(stopped[0]).name, done, manager.directory)
                    break
            if pending is not None:
                finish_step(pending)
    finally:
        progress.close()
        writer.close()
        manager.close()
    if stopped is not None and on_stop is not None:
        on_stop(*stopped)  # After close(): the checkpoint is on disk.
    return state


def _abstract(state: TrainState) -> TrainState:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        state)


def _stop_requested(stopper, done: int, log_every: int, process_count: int) -> bool:
    """True when a stop signal was seen; all processes agree (they vote at log steps)."""
    if process_count == 1:
        return stopper.triggered
    if done % log_every:
        return False
    from jax.experimental import multihost_utils
    votes = multihost_utils.process_allgather(np.asarray(stopper.triggered, np.int32))
    return bool(np.any(votes))


def _global_indices(indices, process_count: int):
    if indices is None:
        return 'unknown (the batch has no "index" entry)'
    indices = np.asarray(indices)
    if process_count > 1:
        from jax.experimental import multihost_utils
        indices = multihost_utils.process_allgather(indices, tiled=True)
    return indices.tolist()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _StopSignals:
    """Context manager that turns SIGTERM and SIGINT into a flag (main thread only).

    `signum` is the first signal received (SIGTERM when this process only stops because another
    process of the job voted to). A second SIGINT raises KeyboardInterrupt (stop without saving).
    """

    def __init__(self):
        self.triggered = False
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.triggered and signum == signal.SIGINT:
            raise KeyboardInterrupt('second SIGINT: stopping without saving')
        logging.warning('received %s; will save and stop at the next step (a second SIGINT '
                        'stops at once, without saving)', signal.Signals(signum).name)
        self.triggered = True
        self.signum = self.signum or signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False


class _MetricWindow:
    """Running means of host metrics since the last log step, and the steps/s over it."""

    def __init__(self):
        self._sums, self._count, self._start = {}, 0, time.perf_counter()

    def add(self, metrics: dict) -> None:
        for k, v in metrics.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self._count += 1

    def pop(self) -> tuple[dict, float]:
        now = time.perf_counter()
        means = {k: v / max(1, self._count) for k, v in self._sums.items()}
        rate = self._count / max(now - self._start, 1e-9)
        self._sums, self._count, self._start = {}, 0, now
        return means, rate


class _SummaryWriter:
    """TensorBoard scalars through tf.summary (imported lazily; no-op when disabled).

    Uses the core op `tf.summary.write` with the 'scalars' plugin metadata, which is what
    `tf.summary.scalar` writes, so the `tensorboard` package is not needed to write events.
    """

    def __init__(self, logdir: str, enabled: bool):
        self._writer = None
        if enabled:
            import tensorflow as tf  # heavy import, only when needed
            self._tf = tf
            self._writer = tf.summary.create_file_writer(logdir)
            self._metadata = tf.compat.v1.SummaryMetadata(
                plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name='scalars'),
                data_class=1)  # DATA_CLASS_SCALAR

    def scalars(self, step: int, values: dict) -> None:
        if self._writer is None:
            return
        tf = self._tf
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32),
                                 metadata=self._metadata)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _NullProgress:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(enabled: bool, start_step: int, num_steps: int):
    if not enabled:
        return _NullProgress()
    from tracking.logs import progress
    return progress(total=num_steps, initial=start_step, unit='step', desc='train')
