"""Optimizer pieces shared by the training tasks (optax GradientTransformations)."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

TORCH_CLIP_EPS = 1e-6


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
    """Scales all gradients by min(1, max_norm / (global_norm + 1e-6)), as torch's
    clip_grad_norm_ does (optax's clip_by_global_norm has no epsilon)."""
    def update(updates, state, params=None):
        del params
        norm = optax.global_norm(updates)
        scale = jnp.minimum(1.0, max_norm / (norm + TORCH_CLIP_EPS))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class MomentumState(NamedTuple):
    count: jax.Array   # int32 [], updates done
    trace: Any         # momentum buffers, same tree as params


def torch_sgd(learning_rate: Callable[[jax.Array], Any], momentum: float,
              reset_steps: Sequence[int] = ()) -> optax.GradientTransformation:
    """torch.optim.SGD's momentum update with a per-parameter learning rate.

    buf <- g + momentum * buf; update = -lr * buf, with lr = learning_rate(count) a scalar or a
    tree of per-leaf learning rates (0 freezes a leaf). The buffers are zeroed before the update
    of every step in `reset_steps` (a rebuilt torch optimizer). Weight decay goes before this
    (optax.add_decayed_weights), as torch adds it to the gradient.
    """
    resets = tuple(int(s) for s in reset_steps)

    def init(params):
        return MomentumState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        reset = jnp.zeros((), bool)
        for step in resets:
            reset = reset | (state.count == step)
        trace = jax.tree.map(lambda g, t: g + momentum * jnp.where(reset, 0.0, t).astype(t.dtype),
                             updates, state.trace)
        lr = learning_rate(state.count)
        if isinstance(lr, (int, float)) or (hasattr(lr, 'ndim') and lr.ndim == 0):
            new_updates = jax.tree.map(lambda t: -lr * t, trace)
        else:
            new_updates = jax.tree.map(lambda t, r: -r * t, trace, lr)
        return new_updates, MomentumState(state.count + 1, trace)

    return optax.GradientTransformation(init, update)
