"""GRM adaptive token division: prediction MLP, decisions, category mask, masked softmax.

Token categories: T (template), S0 (search token, class 0: search-only relation),
S1 (search token, class 1: also interacts with the template). Allowed query -> key pairs:

    query \\ key   T   S0  S1
    T             1   0   1
    S0            0   1   1
    S1            1   1   1
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

MASK_EPS = 1e-6
# Rows = query category, columns = key category, in the order (T, S0, S1).
ALLOWED = jnp.array([[1.0, 0.0, 1.0],
                     [0.0, 1.0, 1.0],
                     [1.0, 1.0, 1.0]], jnp.float32)
_dense_init = nn.initializers.truncated_normal(stddev=0.02, lower=-100.0, upper=100.0)


class DivisionPredictor(nn.Module):
    """Per-search-token 2-class log-probabilities.

    __call__(tokens [B, N, C] LayerNorm-ed, num_template) -> [B, Nx, 2] log-probs, where the
    MLP input is concat([search token, channel-max over template tokens]) (2C).
    """
    hidden: tuple = (384, 192)

    @nn.compact
    def __call__(self, tokens, num_template: int):
        template = tokens[:, :num_template]
        search = tokens[:, num_template:]
        template_max = jnp.max(template, axis=1, keepdims=True)
        template_max = jnp.broadcast_to(template_max, search.shape)
        y = jnp.concatenate([search, template_max], axis=-1)
        y = nn.Dense(self.hidden[0], kernel_init=_dense_init, name='dense0')(y)
        y = nn.gelu(y, approximate=False)
        y = nn.Dense(self.hidden[1], kernel_init=_dense_init, name='dense1')(y)
        y = nn.gelu(y, approximate=False)
        y = nn.Dense(2, kernel_init=_dense_init, name='dense2')(y)
        return jax.nn.log_softmax(y, axis=-1)


def inference_onehot(logprobs, threshold):
    """Inference decision as a one-hot [..., 2] float32.

    logprobs: [..., 2]; threshold: scalar or broadcastable to logprobs.shape[:-1] (may be traced).
    threshold <= 0: argmax (class 1 iff logp1 > logp0); threshold t > 0: class 1 iff p0 < t.
    """
    threshold = jnp.asarray(threshold, jnp.float32)
    by_argmax = logprobs[..., 1] > logprobs[..., 0]
    by_threshold = jnp.exp(logprobs[..., 0]) < threshold
    class1 = jnp.where(threshold > 0, by_threshold, by_argmax)
    return jax.nn.one_hot(class1.astype(jnp.int32), 2, dtype=jnp.float32)


def gumbel_straight_through(rng, logprobs, tau: float = 1.0):
    """Training decision: hard one-hot forward, gradient of softmax((logp + g) / tau).

    g ~ Gumbel(0, 1), as F.gumbel_softmax(hard=True) draws it (-log of Exp(1) noise). Drawn with
    jax.random.gumbel, whose uniform never reaches 0: -log(jax.random.exponential(...)) is inf
    about once in 8 million draws and turned a tiny-config training run into NaN at step 87.
    Returns [..., 2] float32.
    """
    gumbels = jax.random.gumbel(rng, logprobs.shape, jnp.float32)
    soft = jax.nn.softmax((logprobs + gumbels) / tau, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), 2, dtype=soft.dtype)
    return hard - jax.lax.stop_gradient(soft) + soft


def policy_from_onehot(onehot, num_template: int):
    """Category policy [B, N, 3]: template rows (1, 0, 0), search rows (0, d0, d1).

    onehot: [B, Nx, 2] decisions (class 0, class 1).
    """
    b = onehot.shape[0]
    template = jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0], onehot.dtype), (b, num_template, 3))
    search = jnp.concatenate([jnp.zeros(onehot.shape[:-1] + (1,), onehot.dtype), onehot], axis=-1)
    return jnp.concatenate([template, search], axis=1)


def attention_mask(onehot, num_template: int):
    """Query x key mask [B, N, N] in {0, 1} (differentiable in `onehot`), diagonal forced to 1."""
    policy = policy_from_onehot(onehot, num_template)
    mask = jnp.einsum('bia,ac,bjc->bij', policy, ALLOWED.astype(policy.dtype), policy,
                      precision=jax.lax.Precision.HIGHEST)
    eye = jnp.eye(mask.shape[-1], dtype=mask.dtype)
    return mask + (1.0 - mask) * eye


def masked_softmax_attention(logits, mask, eps: float = MASK_EPS):
    """DynamicViT-style softmax with policy, as GRM computes it (float32).

    logits: [..., N, N] scaled q k^T; mask: broadcastable to logits, values in [0, 1].
    Returns attention weights: (exp(l - rowmax) * mask + eps/N) / (sum(exp * mask) + eps); the row
    max runs over all keys (masked ones included) and every row sums to 1.
    """
    logits = logits.astype(jnp.float32)
    n = logits.shape[-1]
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(logits - row_max) * mask.astype(jnp.float32)
    return (e + eps / n) / (jnp.sum(e, axis=-1, keepdims=True) + eps)
