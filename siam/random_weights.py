"""Random Siamese-tracker weights whose outputs are O(1), drawn with numpy.

For tests, benchmarks and demos that need a moving tracker without a checkpoint and without
compiling `model.init` (minutes for the R50 models on a CPU). Not a training init: training
uses `siam.model.init_variables` / `siam.siamattn.init_variables` (the official inits).
"""
from __future__ import annotations

import jax
import numpy as np


def random_variables(shapes, seed: int = 0) -> dict:
    """Numpy variables for a tree of ShapeDtypeStructs (`siam.model.variable_shapes` or
    `siam.siamattn.variable_shapes`): He-normal kernels (fan-in = every axis but the last),
    conv1 / 128 for 0..255 input, the RPN `loc` and SiamAttn box-delta (`tail_det_box`) layers
    x 0.05 so boxes move by pixels rather than by the crop; zero biases and BN means, unit BN
    scales, variances and RPN level weights, DSA gains 0.5. All float32."""
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        names = [getattr(p, 'key', str(p)) for p in path]
        shape, name = leaf.shape, names[-1]
        if name in ('kernel', 'transpose_kernel'):
            value = rng.normal(0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
            if len(names) > 2 and names[1] == 'backbone' and names[2] == 'conv1':
                value /= 128.0
            if 'loc' in names or names[-2] == 'tail_det_box':
                value *= 0.05
            return value.astype(np.float32)
        if name in ('bias', 'mean'):
            return np.zeros(shape, np.float32)
        if name == 'gamma':
            return np.full(shape, 0.5, np.float32)
        return np.ones(shape, np.float32)

    return jax.tree_util.tree_map_with_path(make, shapes)
