"""ROAM's learned optimizer as optax transformations, shaped like google/learned_optimization.

    lopt = CoordinatewiseLSTM()                  # hidden 20, 2 layers, 5 inputs
    meta_params = lopt.init(key)                 # data: a pytree of LSTM + linear weights
    opt = lopt.opt_fn(meta_params, initial_rate=lambda0)   # optax.GradientTransformationExtraArgs
    state = opt.init(params)
    updates, state = opt.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)          # params - rate * grads

Any optax transformation (optax.sgd, optax.adam) fits the same slot (they ignore `value`).

Per coordinate (every entry of every leaf of `params` is one LSTM batch row, weights shared, own
carry), the LSTM input is the 5-vector [previous rate, preprocess_gradients(g) (2 columns),
parameter, loss] (all under stop_gradient, as the official inputs are detached), and the new rate
is sigmoid(linear(h_top)); the update is -rate * g. The state carries both layers' (h, c) and the
previous rate. The LSTM is PyTorch's nn.LSTM cell (gate order i, f, g, o).

Also here: the Meta-SGD first step with the meta-learned per-coordinate rates lambda0
(`meta_sgd_step`, `meta_sgd`) and Random Filter Scaling (`random_filter_scales`).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

HIGHEST = jax.lax.Precision.HIGHEST


def preprocess_gradients(g, p: float = 10.0, eps: float = 1e-6):
    """utils.preprocess_gradients (Andrychowicz et al. App. A, exact two-branch form):
    |g| > e^-p: (log(|g| + eps) / p, sign g); otherwise (-1, e^p g). g [...] -> [..., 2]."""
    g = jnp.asarray(g, jnp.float32)
    ind = (jnp.abs(g) > math.exp(-p)).astype(g.dtype)
    x1 = jnp.log(jnp.abs(g) + eps) / p * ind - (1.0 - ind)
    x2 = jnp.sign(g) * ind + math.exp(p) * g * (1.0 - ind)
    return jnp.stack([x1, x2], -1)


class LSTMCarry(NamedTuple):
    """Per-coordinate LSTM state: h, c [layers, n, hidden]."""
    h: jax.Array
    c: jax.Array


class CoordinatewiseLSTMState(NamedTuple):
    """optax state of the learned optimizer: per leaf of params, the LSTM carry (h, c
    [layers, leaf.size, hidden]) and the previous rate (the leaf's shape); `count` steps done."""
    carry: Any
    rate: Any
    count: jax.Array


def lstm_cell(params, carry: LSTMCarry, x):
    """One step of the stacked PyTorch LSTM + linear + sigmoid on a batch of coordinates.

    params: {'layer_l': {'w_ih' [in, 4H], 'w_hh' [H, 4H], 'b_ih', 'b_hh' [4H]}, 'linear':
    {'kernel' [H, 1], 'bias' [1]}}; carry h, c [L, n, H]; x [n, in]. Returns (rate [n], carry).
    """
    hs, cs = [], []
    inp = x
    layers = len(carry.h)
    for layer in range(layers):
        p = params[f'layer_{layer}']
        gates = (jnp.dot(inp, p['w_ih'], precision=HIGHEST) + p['b_ih']
                 + jnp.dot(carry.h[layer], p['w_hh'], precision=HIGHEST) + p['b_hh'])
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * carry.c[layer] + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        hs.append(h)
        cs.append(c)
        inp = h
    out = jnp.dot(inp, params['linear']['kernel'], precision=HIGHEST) + params['linear']['bias']
    return jax.nn.sigmoid(out[:, 0]), LSTMCarry(jnp.stack(hs), jnp.stack(cs))


class CoordinatewiseLSTM:
    """ROAM's meta-optimizer (metanets.MetaOptimizer): 2-layer LSTM, hidden 20, 5 inputs,
    Linear(20 -> 1) with bias `bias_init` (-10), sigmoid -> a per-coordinate rate in (0, 1).

    init(key) -> meta_params; opt_fn(meta_params, ...) -> optax.GradientTransformationExtraArgs.
    """

    num_inputs = 5

    def __init__(self, hidden_size: int = 20, num_layers: int = 2, bias_init: float = -10.0,
                 p: float = 10.0, eps: float = 1e-6):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias_init = bias_init
        self.p = p
        self.eps = eps

    def init(self, key) -> dict:
        """PyTorch's default init: LSTM weights and biases U(-1/sqrt(H), 1/sqrt(H)); Linear
        weight U(-1/sqrt(H), 1/sqrt(H)), bias `bias_init`."""
        h = self.hidden_size
        bound = 1.0 / math.sqrt(h)
        keys = jax.random.split(key, 4 * self.num_layers + 1)
        u = lambda k, shape: jax.random.uniform(k, shape, jnp.float32, -bound, bound)  # noqa
        params = {}
        for layer in range(self.num_layers):
            fan_in = self.num_inputs if layer == 0 else h
            k = keys[4 * layer:4 * layer + 4]
            params[f'layer_{layer}'] = {'w_ih': u(k[0], (fan_in, 4 * h)),
                                        'w_hh': u(k[1], (h, 4 * h)),
                                        'b_ih': u(k[2], (4 * h,)), 'b_hh': u(k[3], (4 * h,))}
        params['linear'] = {'kernel': u(keys[-1], (h, 1)),
                            'bias': jnp.full((1,), self.bias_init, jnp.float32)}
        return params

    def zero_carry(self, n: int) -> LSTMCarry:
        z = jnp.zeros((self.num_layers, n, self.hidden_size), jnp.float32)
        return LSTMCarry(z, z)

    def inputs(self, rate, grad, param, loss):
        """The [n, 5] LSTM input of flat coordinates (stop_gradient applied)."""
        sg = jax.lax.stop_gradient
        n = grad.size
        cols = [sg(rate).reshape(n, 1).astype(jnp.float32),
                preprocess_gradients(sg(grad).reshape(n), self.p, self.eps),
                sg(param).reshape(n, 1).astype(jnp.float32),
                jnp.broadcast_to(sg(jnp.asarray(loss, jnp.float32)), (n, 1))]
        return jnp.concatenate(cols, -1)

    def opt_fn(self, meta_params, initial_rate=None, stop_carry_gradient: bool = False
               ) -> optax.GradientTransformationExtraArgs:
        """The optimizer for fixed meta-parameters.

        initial_rate: the 'previous rate' of the first LSTM step: a pytree like params (ROAM:
        lambda0), a scalar, or None (0). stop_carry_gradient: stop gradients through the carry
        and rate between steps (the official tracking mode); False keeps them (training: BPTT
        through h, c). update(grads, state, params, value=loss) needs params and value."""
        lopt = self

        def init_fn(params):
            leaves, treedef = jax.tree_util.tree_flatten(params)
            scalar = initial_rate is None or (
                jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(initial_rate))
                and jnp.ndim(initial_rate) == 0)   # a pytree of rates is not a scalar
            if scalar:
                r0 = 0.0 if initial_rate is None else initial_rate
                rates = [jnp.full(jnp.shape(x), r0, jnp.float32) for x in leaves]
            else:
                rate_leaves = treedef.flatten_up_to(initial_rate)
                rates = [jnp.broadcast_to(jnp.asarray(r, jnp.float32), jnp.shape(x))
                         for r, x in zip(rate_leaves, leaves)]
            carry = [lopt.zero_carry(int(jnp.size(x))) for x in leaves]
            return CoordinatewiseLSTMState(carry=treedef.unflatten(carry),
                                           rate=treedef.unflatten(rates),
                                           count=jnp.zeros((), jnp.int32))

        def update_fn(updates, state, params=None, **extra_args):
            if params is None:
                raise ValueError('roam.optim.CoordinatewiseLSTM: update needs params '
                                 '(the parameter is an LSTM input)')
            if 'value' not in extra_args:
                raise ValueError('roam.optim.CoordinatewiseLSTM: update needs value=loss '
                                 '(the loss is an LSTM input)')
            loss = extra_args['value']
            g_leaves, treedef = jax.tree_util.tree_flatten(updates)
            p_leaves = treedef.flatten_up_to(params)
            r_leaves = treedef.flatten_up_to(state.rate)
            c_leaves = treedef.flatten_up_to(state.carry)
            out_u, out_r, out_c = [], [], []
            for g, p, r, carry in zip(g_leaves, p_leaves, r_leaves, c_leaves):
                carry = LSTMCarry(*carry)
                if stop_carry_gradient:
                    carry = jax.tree_util.tree_map(jax.lax.stop_gradient, carry)
                x = lopt.inputs(r, g, p, loss)
                rate, carry = lstm_cell(meta_params, carry, x)
                rate = rate.reshape(jnp.shape(g))
                out_u.append(-rate * g)
                out_r.append(rate)
                out_c.append(carry)
            return treedef.unflatten(out_u), CoordinatewiseLSTMState(
                carry=treedef.unflatten(out_c), rate=treedef.unflatten(out_r),
                count=state.count + 1)

        return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ---------------------------------------------------------------- Meta-SGD first step

def meta_sgd_step(params, grads, rates):
    """The first-frame update with meta-learned per-coordinate rates lambda0 (no LSTM):
    params - rates * grads, leaf by leaf. Differentiable in params, grads and rates."""
    return jax.tree_util.tree_map(lambda p, g, r: p - r * g, params, grads, rates)


def meta_sgd(rates) -> optax.GradientTransformation:
    """meta_sgd_step as an optax transformation: updates = -rates * grads (stateless)."""
    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda g, r: -r * g, updates, rates), state
    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------- Random Filter Scaling

def random_filter_scales(key, params, radius):
    """Random Filter Scaling factors r = exp(radius * U(-1, 1)) per coordinate, a pytree like
    params. radius: a float, or a dict of floats keyed by params' top-level names (ROAM:
    {'cf': 1.6, 'reg': 1.3}). One key -> one independent draw per leaf.

    Use: the optimiser works on phi = theta / r and the network sees phi * r
    (`scale_params`), so the gradient w.r.t. phi is r * dL/dtheta."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, (path, leaf) in zip(keys, leaves):
        if isinstance(radius, dict):
            top = getattr(path[0], 'key', None)
            if top not in radius:
                raise KeyError(f'random_filter_scales: no radius for top-level key {top!r} '
                               f'(have {sorted(radius)})')
            rad = radius[top]
        else:
            rad = radius
        u = jax.random.uniform(k, jnp.shape(leaf), jnp.float32, -1.0, 1.0)
        out.append(jnp.exp(rad * u))
    return jax.tree_util.tree_unflatten(treedef, out)


def scale_params(params, scales):
    """params * scales leaf by leaf (phi -> theta)."""
    return jax.tree_util.tree_map(lambda p, s: p * s, params, scales)


def unscale_params(params, scales):
    """params / scales leaf by leaf (theta -> phi)."""
    return jax.tree_util.tree_map(lambda p, s: p / s, params, scales)
