"""Device mesh, shardings and global batches for data-parallel training.

One mesh axis, 'data', spans every device of every process. Parameters are replicated; batches are
split along their leading axis. Each process feeds only its own slice of the global batch (the
rows `process_index * B/P : (process_index + 1) * B/P`), and `shard_batch` assembles the global
`jax.Array` from those host-local slices.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'

# Environment variables that say a multi-process job was configured explicitly.
_EXPLICIT_ENV = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')
# Set to 1 to let JAX auto-detect the cluster (SLURM, Open MPI, Cloud TPU, ...).
AUTO_DETECT_ENV = 'JAX_DISTRIBUTED_AUTO'


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Calls `jax.distributed.initialize` only when a multi-process job is configured.

    Configured means either JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are all
    set (explicit), or JAX_DISTRIBUTED_AUTO=1 (cluster auto-detection). On a plain single machine
    nothing happens. Returns True when it initialised the distributed runtime.
    """
    environ = os.environ if environ is None else environ
    present = [name for name in _EXPLICIT_ENV if environ.get(name)]
    if present and len(present) != len(_EXPLICIT_ENV):
        missing = [name for name in _EXPLICIT_ENV if name not in present]
        raise ValueError(f'multi-process setup is incomplete: {present} set but {missing} missing')
    if present:
        jax.distributed.initialize(
            coordinator_address=environ['JAX_COORDINATOR_ADDRESS'],
            num_processes=int(environ['JAX_NUM_PROCESSES']),
            process_id=int(environ['JAX_PROCESS_ID']))
    elif environ.get(AUTO_DETECT_ENV, '') in ('1', 'true', 'True'):
        jax.distributed.initialize()
    else:
        return False
    logging.info('jax.distributed initialised: process %d of %d, %d global devices',
                 jax.process_index(), jax.process_count(), jax.device_count())
    return True


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis 'data' over `devices` (default: all devices of all processes).

    Devices are ordered by (process, id), so each process owns a contiguous block of rows.
    """
    devices = jax.devices() if devices is None else list(devices)
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy of an array on every device of the mesh."""
    return NamedSharding(mesh, P())


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits an array's leading (batch) axis over the 'data' axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_global_batch(global_batch: int, mesh: Mesh, process_count: int | None = None) -> int:
    """Checks that the global batch divides over devices and processes.

    Returns the per-process batch size. Raises ValueError naming config.train.batch_size.
    """
    num_devices = mesh.devices.size
    process_count = jax.process_count() if process_count is None else process_count
    if global_batch <= 0 or global_batch % num_devices:
        raise ValueError(f'global batch size {global_batch} must be a positive multiple of the '
                         f'number of devices ({num_devices}); change config.train.batch_size')
    if global_batch % process_count:
        raise ValueError(f'global batch size {global_batch} must be a multiple of the number of '
                         f'processes ({process_count})')
    return global_batch // process_count


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Builds global arrays sharded on 'data' from this process's slice of the batch.

    batch: dict of numpy arrays [B_local, ...] (B_local = global batch / process count; all
    processes must pass the same B_local). Process p's rows become global rows
    [p B_local, (p + 1) B_local) (the mesh lists devices process by process). 64-bit numbers
    become 32-bit unless jax_enable_x64. Returns dict of jax.Array [B_global, ...].
    """
    sharding = data_sharding(mesh)
    num_devices = mesh.devices.size
    process_count = jax.process_count()
    out = {}
    for key, value in batch.items():
        value = _without_x64(np.asarray(value))
        if value.ndim == 0:
            raise ValueError(f'batch[{key!r}] is a scalar; every batch entry needs a batch axis')
        global_batch = value.shape[0] * process_count
        if global_batch % num_devices:
            raise ValueError(f'batch[{key!r}]: global batch {global_batch} '
                             f'({value.shape[0]} per process x {process_count} processes) does not '
                             f'divide over {num_devices} devices')
        global_shape = (global_batch,) + value.shape[1:]
        out[key] = jax.make_array_from_process_local_data(sharding, value, global_shape)
    return out


def _without_x64(value: np.ndarray) -> np.ndarray:
    """Casts 64-bit numbers to 32 bits unless jax_enable_x64 is on (what jax would do anyway)."""
    if jax.config.jax_enable_x64 or value.dtype.itemsize != 8:
        return value
    if value.dtype.kind in 'iu':
        return value.astype(np.int32 if value.dtype.kind == 'i' else np.uint32)
    if value.dtype.kind == 'f':
        return value.astype(np.float32)
    if value.dtype.kind == 'c':
        return value.astype(np.complex64)
    return value
