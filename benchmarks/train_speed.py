"""Training throughput: jitted train steps per second on one fixed batch, plus the input
pipeline's batches per second.

    python benchmarks/train_speed.py [--config configs/grm.py:tiny] [--steps 30] [--set k=v ...]

Uses the real task (model, loss, optimizer groups) and the data-parallel step over all local
devices. Writes benchmarks/results/train_speed_<variant>_<platform>.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import write_result  # noqa: E402
from tracking.config import load_config  # noqa: E402
from tracking.train import loop, sharding  # noqa: E402


def _fake_batch(task, config, rng):
    """A batch of the shapes the pipeline yields (for models whose data is not on this machine):
    from `task.sample_spec()` when the task has one (random images, zero labels)."""
    import numpy as np
    b, m = config.train.batch_size, config.model
    if hasattr(task, 'sample_spec'):
        batch = {}
        for name, spec in task.sample_spec().items():
            shape = (b,) + tuple(spec.shape)
            if name in ('template', 'search'):
                batch[name] = rng.uniform(0, 255, shape).astype(spec.dtype)
            else:
                batch[name] = np.zeros(shape, spec.dtype)
        batch['index'] = np.arange(b, dtype=np.int64)
        return batch
    feat = m.search_size // m.patch_size
    return dict(
        template=rng.integers(0, 256, (b, m.template_size, m.template_size, 3), np.uint8),
        search=rng.integers(0, 256, (b, m.search_size, m.search_size, 3), np.uint8),
        template_box=np.tile(np.float32([0.25, 0.25, 0.5, 0.5]), (b, 1)),
        search_box=np.tile(np.float32([0.4, 0.4, 0.2, 0.2]), (b, 1)),
        heatmap=np.zeros((b, feat, feat), np.float32),
        index=np.arange(b, dtype=np.int64))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/grm.py:tiny')
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--set', action='append', default=[], help='config override k=v')
    parser.add_argument('--fake_data', action='store_true',
                        help='random batches instead of the configured datasets')
    parser.add_argument('--phase', type=int, default=-1,
                        help='training phase to time for tasks with phases (-1: the last)')
    args = parser.parse_args()

    import numpy as np
    from tracking.train.tasks import make_task
    config = load_config(args.config, args.set)
    task = make_task(config)
    mesh = sharding.make_mesh()
    variables = task.init_variables(jax.random.PRNGKey(0))
    optimizer = task.make_optimizer(variables['params'])
    state = loop.create_train_state(variables, optimizer, jax.random.PRNGKey(1), mesh)
    phase = None
    if getattr(task, 'phase_starts', None) is not None:
        phase = len(task.phase_starts) if args.phase < 0 else args.phase
    step = loop.make_train_step(task, optimizer, mesh, phase)

    pipeline_rate = None
    if args.fake_data:
        batch_np = _fake_batch(task, config, np.random.default_rng(0))
    else:
        batches = iter(task.train_batches(0, jax.process_index(), jax.process_count()))
        batch_np = next(batches)
        start = time.perf_counter()
        for _ in range(args.steps):
            next(batches)
        pipeline_rate = args.steps / (time.perf_counter() - start)
    batch = sharding.shard_batch(batch_np, mesh)

    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    rate = args.steps / (time.perf_counter() - start)

    write_result(f'train_speed_{config.tracker}_{config.variant}', dict(
        config=args.config, overrides=args.set, global_batch=config.train.batch_size,
        steps_per_s=rate, samples_per_s=rate * config.train.batch_size,
        pipeline_batches_per_s=pipeline_rate, fake_data=args.fake_data, phase=phase,
        command='python benchmarks/train_speed.py ' + ' '.join(sys.argv[1:])))


if __name__ == '__main__':
    main()
