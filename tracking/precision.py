"""Numeric precision of a tracker's network at test time: `config.test.precision`.

    mode = precision_of(config)                     # 'float32' | 'tf32' | 'bfloat16'
    call = network_call(model.apply, mode, float32_matmul='highest')
    outputs = call(variables, template, search, threshold=t)   # float32 outputs in every mode

Only the network goes through `network_call`; crops, post-processing and the tracker state keep
their own dtypes (float32 / float64) in every mode.

  'float32'  (default, the parity path): exactly the computation without this module: `apply`
             is called unchanged, inside `jax.default_matmul_precision(float32_matmul)` when the
             tracker asks for one (GRM: 'highest'), so the traced program is the same.
  'tf32'     the network traced inside `jax.default_matmul_precision('tensorfloat32')`: float32
             matmuls and convolutions may run on TF32 tensor cores (10-bit mantissa inputs,
             float32 accumulation) on NVIDIA Ampere or newer GPUs. XLA:CPU ignores the hint
             (the result equals 'float32'). Layers that fix their own per-op precision (SiamRPN++'s
             `config.model.precision`) are built with `per_op_precision(mode, theirs)` instead, a
             per-op value overriding the default.
  'bfloat16' the floating leaves of the variables and of the positional network inputs cast to
             bfloat16 (inside the traced call, so the stored float32 variables are untouched),
             the network run on them (bfloat16 matmuls/convolutions with float32 accumulation
             where the backend does so), its floating outputs cast back to float32. Differs from
             'float32' on every device.

Keyword arguments of the call (hyper-parameters such as GRM's division threshold, Flax's `method`)
are passed through uncast.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp

KEY = 'config.test.precision'
PRECISIONS = ('float32', 'tf32', 'bfloat16')
DEFAULT = 'float32'
_TF32 = 'tensorfloat32'      # jax's name for lax.Precision.HIGH (TF32 on GPUs, bf16_3x on TPUs)


def validate(value, where: str = KEY) -> str:
    """`value` if it is one of PRECISIONS, else ValueError naming `where` and the allowed values."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f'{where} = {value!r}: expected one of {", ".join(PRECISIONS)}')
    return value


def precision_of(config) -> str:
    """The validated `config.test.precision` of a full tracker config; DEFAULT ('float32') when the
    config has no `test` section (e.g. a GRM model section) or the section has no such field."""
    test = config.get('test', None) if hasattr(config, 'get') else None
    if test is None:
        return DEFAULT
    return validate(test.get('precision', DEFAULT))


def per_op_precision(mode: str, float32_value):
    """The per-op `precision=` a model with explicit per-op precision should be built with:
    'float32': the model's own `float32_value`; 'tf32': 'tensorfloat32' (a per-op value overrides
    `jax.default_matmul_precision`, so the hint must be given per op there); 'bfloat16': None
    (the operands are bfloat16, no float32 precision to ask for)."""
    mode = validate(mode)
    return {'float32': float32_value, 'tf32': _TF32, 'bfloat16': None}[mode]


def cast_floats(tree, dtype):
    """`tree` with every floating-point leaf cast to `dtype` (integer, bool, uint8 leaves and
    non-array leaves unchanged)."""
    def cast(leaf):
        if hasattr(leaf, 'dtype') and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf).astype(dtype)
        return leaf
    return jax.tree_util.tree_map(cast, tree)


def network_call(apply, mode: str, float32_matmul=None):
    """Wraps a network function for precision `mode` (module docstring).

    apply(variables, *inputs, **kwargs) -> outputs pytree (e.g. a Flax `model.apply`);
    float32_matmul: the matmul precision the tracker's float32 path is traced with (None: no
    scope, JAX's default). Returns call(variables, *inputs, **kwargs) -> outputs, float32 for
    floating leaves in 'bfloat16' mode, exactly `apply`'s outputs otherwise.
    """
    mode = validate(mode)

    def call(variables, *inputs, **kwargs):
        if mode == 'bfloat16':
            outputs = apply(cast_floats(variables, jnp.bfloat16),
                            *cast_floats(inputs, jnp.bfloat16), **kwargs)
            return cast_floats(outputs, jnp.float32)
        scope = _TF32 if mode == 'tf32' else float32_matmul
        with (jax.default_matmul_precision(scope) if scope is not None
              else contextlib.nullcontext()):
            return apply(variables, *inputs, **kwargs)

    return call


__all__ = ['DEFAULT', 'KEY', 'PRECISIONS', 'cast_floats', 'network_call', 'per_op_precision',
           'precision_of', 'validate']
