"""tf.data plumbing shared by every training input stream: sample index -> sample -> batch.

A sampler is a function `sample(index) -> dict of numpy arrays` that is pure in (its seed,
index). `sample_batches` turns it into an endless iterator of this process's rows of every
global batch: batch s holds global samples s * B ... s * B + B - 1 and process p of P gets rows
[p B / P, (p + 1) B / P). So a run resumed at step s sees exactly the batches an uninterrupted
run sees from step s on, on any number of processes.
"""
from __future__ import annotations

import atexit
import dataclasses
import gc
import weakref
from typing import Callable, Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """Shape and dtype of one entry of a sample (without the batch axis)."""
    shape: tuple
    dtype: type


def sample_batches(sample: Callable[[int], dict], spec: dict, global_batch: int,
                   start_step: int = 0, process_index: int = 0, process_count: int = 1,
                   num_parallel_calls: int = 4, prefetch: int = 2) -> Iterator[dict]:
    """Endless iterator of dicts {name: [B, *spec[name].shape] array}, B = global_batch /
    process_count, from batch `start_step` on.

    Built with tf.data: a counter -> global sample index -> parallel deterministic map of
    `sample` through tf.numpy_function -> batch -> prefetch.
    """
    import tensorflow as tf

    if global_batch % process_count:
        raise ValueError(f'input pipeline: global batch {global_batch} is not divisible by '
                         f'{process_count} processes')
    if not 0 <= process_index < process_count:
        raise ValueError(f'input pipeline: process_index {process_index} not in '
                         f'[0, {process_count})')
    keys = tuple(spec)
    local = global_batch // process_count
    dtypes = [tf.as_dtype(np.dtype(spec[k].dtype)) for k in keys]

    def sample_tuple(index):
        values = sample(int(index))
        return tuple(np.asarray(values[k], spec[k].dtype) for k in keys)

    def global_index(i):
        step = start_step + i // local
        return step * global_batch + process_index * local + i % local

    def load(index):
        values = tf.numpy_function(sample_tuple, [index], dtypes, stateful=False)
        return {k: tf.ensure_shape(v, spec[k].shape) for k, v in zip(keys, values)}

    dataset = tf.data.Dataset.counter(start=0, dtype=tf.int64).map(global_index)
    dataset = dataset.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    dataset = dataset.batch(local, drop_remainder=True).prefetch(prefetch)
    options = tf.data.Options()
    options.deterministic = True
    return BatchIterator(dataset.with_options(options))


class BatchIterator:
    """Iterator over a tf.data pipeline that can be closed, and is closed at interpreter exit.

    tf.data worker threads that run Python (tf.numpy_function) must be stopped before Python
    shuts down, or the process can hang or abort at exit; `close()` (also called by `atexit`
    for every iterator still open) drops the TF iterator, which cancels them.
    """

    def __init__(self, dataset):
        self._iterator = iter(dataset.as_numpy_iterator())
        _OPEN_ITERATORS.add(self)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._iterator is None:
            raise StopIteration
        return next(self._iterator)

    def close(self) -> None:
        self._iterator = None
        _OPEN_ITERATORS.discard(self)


_OPEN_ITERATORS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
    for iterator in list(_OPEN_ITERATORS):
        iterator.close()
    gc.collect()
