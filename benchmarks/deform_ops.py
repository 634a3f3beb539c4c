"""Speed of siam.deform on this machine: DCNv1 forward and forward+backward against a plain 3x3
conv of the same size, and the deformable RoI pooling (SiamAttn's shapes).

    .venv/bin/python benchmarks/deform_ops.py [--batch 1 8] [--repeats 20]

Prints one line per case: milliseconds per call (median of --repeats, after compilation).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from siam.deform import deform_conv2d, deform_roi_pool


def _median_ms(fn, args, repeats):
    jax.block_until_ready(fn(*args))              # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--size', type=int, default=31)
    parser.add_argument('--channels', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--rois', type=int, default=16)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    c, s = args.channels, args.size
    kernel = jnp.asarray(rng.standard_normal((3, 3, c, c)).astype(np.float32) * 0.02)
    print(f'device {jax.devices()[0].device_kind}; map {s}x{s}x{c} -> {c}, 3x3')
    for b in args.batch:
        x = jnp.asarray(rng.standard_normal((b, s, s, c)).astype(np.float32))
        offset = jnp.asarray(rng.uniform(-3, 3, (b, s, s, 18)).astype(np.float32))
        dcn = jax.jit(deform_conv2d)
        conv = jax.jit(_conv)
        dcn_grad = jax.jit(jax.grad(lambda x, o, k: jnp.sum(deform_conv2d(x, o, k) ** 2),
                                    argnums=(0, 1, 2)))
        conv_grad = jax.jit(jax.grad(lambda x, k: jnp.sum(_conv(x, k) ** 2), argnums=(0, 1)))
        results = dict(dcn_forward=_median_ms(dcn, (x, offset, kernel), args.repeats),
                       conv_forward=_median_ms(conv, (x, kernel), args.repeats),
                       dcn_forward_backward=_median_ms(dcn_grad, (x, offset, kernel),
                                                       args.repeats),
                       conv_forward_backward=_median_ms(conv_grad, (x, kernel), args.repeats))
        print(f'batch {b}: ' + ', '.join(f'{k} {v:.2f} ms' for k, v in results.items()))
    for map_size, pool, rois in ((25, 4, args.rois), (63, 16, args.rois)):
        features = jnp.asarray(rng.standard_normal((1, map_size, map_size, c)).astype(np.float32))
        boxes = np.tile(np.array([[0, 80.0, 90.0, 170.0, 160.0]], np.float32), (rois, 1))
        offsets = jnp.asarray(rng.uniform(-2, 2, (rois, pool, pool, 2)).astype(np.float32))
        def pool_fn(f, r, o, size=map_size, pool=pool):
            return deform_roi_pool(f, r, o, 1.0 / (255 / size), pool)
        fn = jax.jit(pool_fn)
        grad = jax.jit(jax.grad(lambda f, r, o, fn=pool_fn: jnp.sum(fn(f, r, o) ** 2),
                                argnums=(0, 2)))
        forward = _median_ms(fn, (features, boxes, offsets), args.repeats)
        both = _median_ms(grad, (features, boxes, offsets), args.repeats)
        print(f'roi pool {map_size}x{map_size}x{c} -> {pool}x{pool}, {rois} RoIs: '
              f'forward {forward:.2f} ms, forward+backward {both:.2f} ms')


if __name__ == '__main__':
    main()
