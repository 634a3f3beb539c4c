"""roam.optim: the coordinate-wise LSTM optimizer as an optax transformation on any pytree,
optax drop-ins, the Meta-SGD first step (second order) and Random Filter Scaling."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from roam.optim import (CoordinatewiseLSTM, meta_sgd, meta_sgd_step, preprocess_gradients,
                        random_filter_scales, scale_params, unscale_params)


def _quadratic(params):
    return jnp.sum(params['a'] ** 2) + 0.5 * jnp.sum((params['b'] - 1.0) ** 2)


def _mlp_problem():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32, 4)).astype(np.float32))
    y = jnp.sin(x @ jnp.asarray([[1.0], [-2.0], [0.5], [1.5]]))
    params = {'dense0': {'w': jnp.asarray(rng.normal(size=(4, 16)).astype(np.float32) * 0.5),
                         'b': jnp.zeros(16)},
              'dense1': {'w': jnp.asarray(rng.normal(size=(16, 1)).astype(np.float32) * 0.25),
                         'b': jnp.zeros(1)}}

    def loss(p):
        h = jnp.tanh(x @ p['dense0']['w'] + p['dense0']['b'])
        return jnp.mean((h @ p['dense1']['w'] + p['dense1']['b'] - y) ** 2)
    return params, loss


def _run(tx, params, loss_fn, steps):
    """The slot every optimizer fills: update(grads, state, params, value=loss); one scan."""
    def body(carry, _):
        p, s = carry
        value, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p, value=value)
        return (optax.apply_updates(p, updates), s), value
    (params, _), losses = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return params, jnp.concatenate([losses, loss_fn(params)[None]])


def _lstm_meta_params(bias):
    lopt = CoordinatewiseLSTM()
    meta = lopt.init(jax.random.PRNGKey(0))
    meta['linear']['bias'] = jnp.full((1,), bias, jnp.float32)
    return lopt, meta


def test_init_shapes_and_defaults():
    lopt = CoordinatewiseLSTM()
    meta = lopt.init(jax.random.PRNGKey(0))
    assert sum(x.size for x in jax.tree_util.tree_leaves(meta)) == 5_541
    assert meta['layer_0']['w_ih'].shape == (5, 80) and meta['layer_1']['w_ih'].shape == (20, 80)
    assert float(meta['linear']['bias'][0]) == -10.0
    params = {'a': jnp.ones((3, 2)), 'b': jnp.zeros(4)}
    tx = lopt.opt_fn(meta)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    state = tx.init(params)
    assert state.carry['a'].h.shape == (2, 6, 20)
    grads = jax.grad(_quadratic)(params)
    updates, state = jax.jit(lambda g, s, p: tx.update(g, s, p, value=_quadratic(p)))(
        grads, state, params)
    # untrained: rate ~ sigmoid(-10) = 4.5e-5 on every coordinate
    np.testing.assert_allclose(np.asarray(state.rate['a']), 4.54e-5, rtol=0.2)
    np.testing.assert_allclose(np.asarray(updates['a']),
                               -np.asarray(state.rate['a']) * np.asarray(grads['a']))
    with pytest.raises(ValueError, match='value=loss'):
        tx.update(grads, state, params)
    with pytest.raises(ValueError, match='params'):
        tx.update(grads, state, None, value=1.0)


@pytest.mark.parametrize('problem', ['quadratic', 'mlp'])
def test_lstm_decreases_loss_and_optax_drops_in(problem):
    """The learned optimizer (untrained, linear bias -3: rates ~ 0.05) lowers the loss of a toy
    quadratic and of a small MLP; optax sgd and adam run in the same slot."""
    if problem == 'quadratic':
        params = {'a': jnp.arange(6.0).reshape(3, 2), 'b': jnp.zeros(4)}
        loss_fn = _quadratic
    else:
        params, loss_fn = _mlp_problem()
    lopt, meta = _lstm_meta_params(-3.0)
    candidates = {'lstm': lopt.opt_fn(meta, initial_rate=0.05),
                  'sgd': optax.with_extra_args_support(optax.sgd(0.05)),
                  'adam': optax.with_extra_args_support(optax.adam(0.1))}
    for name, tx in candidates.items():
        _, losses = jax.jit(lambda p: _run(tx, p, loss_fn, 30))(params)
        losses = np.asarray(losses)
        assert np.all(np.isfinite(losses)), name
        assert losses[-1] < 0.8 * losses[0], (name, losses[0], losses[-1])
        if name == 'lstm':
            assert np.all(np.diff(losses) < 0), losses


def test_coordinatewise_invariance():
    """The same coordinates as one flat leaf or as a pytree get the same rates: the layout does
    not matter (it is why ROAM's flat vector and the theta pytree are interchangeable)."""
    lopt, meta = _lstm_meta_params(-4.0)
    params = {'a': jnp.linspace(-1, 1, 6).reshape(2, 3), 'b': jnp.linspace(2, 3, 4)}
    flat = jnp.concatenate([params['a'].reshape(-1), params['b']])
    grads = jax.grad(_quadratic)(params)
    gflat = jnp.concatenate([grads['a'].reshape(-1), grads['b']])
    tx_tree, tx_flat = lopt.opt_fn(meta, 0.01), lopt.opt_fn(meta, 0.01)
    s_tree, s_flat = tx_tree.init(params), tx_flat.init(flat)
    up_tree = jax.jit(lambda s: tx_tree.update(grads, s, params, value=2.0))
    up_flat = jax.jit(lambda s: tx_flat.update(gflat, s, flat, value=2.0))
    for _ in range(3):
        u_tree, s_tree = up_tree(s_tree)
        u_flat, s_flat = up_flat(s_flat)
        np.testing.assert_allclose(np.concatenate([np.asarray(u_tree['a']).reshape(-1),
                                                   np.asarray(u_tree['b'])]),
                                   np.asarray(u_flat), rtol=1e-6)


def test_meta_gradient_through_unroll():
    """The look-ahead loss after LSTM steps is differentiable in the meta-parameters. One step:
    equal to central finite differences (the LSTM inputs do not depend on the meta-parameters).
    Three steps: finite, and different with stop_carry_gradient (no BPTT through h, c). As in
    the official code the LSTM inputs are stop_gradient'ed, so for several steps the gradient is
    the truncated one, not the total derivative finite differences would measure."""
    params = {'a': jnp.arange(6.0).reshape(3, 2), 'b': jnp.zeros(4)}
    lopt, meta = _lstm_meta_params(-3.0)

    def meta_loss(meta, steps, stop):
        tx = lopt.opt_fn(meta, initial_rate=0.05, stop_carry_gradient=stop)
        p, s = params, tx.init(params)
        for _ in range(steps):
            value, grads = jax.value_and_grad(_quadratic)(p)
            grads = jax.lax.stop_gradient(grads)
            u, s = tx.update(grads, s, jax.lax.stop_gradient(p), value=value)
            p = optax.apply_updates(jax.lax.stop_gradient(p), u)
        return _quadratic(p)

    def with_bias(delta):
        return {**meta, 'linear': {'kernel': meta['linear']['kernel'],
                                   'bias': meta['linear']['bias'] + delta}}

    grad_fn = jax.jit(jax.grad(meta_loss), static_argnums=(1, 2))
    meta_loss = jax.jit(meta_loss, static_argnums=(1, 2))
    g1 = grad_fn(meta, 1, False)
    eps = 1e-2
    fd = (meta_loss(with_bias(eps), 1, False) - meta_loss(with_bias(-eps), 1, False)) / (2 * eps)
    np.testing.assert_allclose(float(g1['linear']['bias'][0]), float(fd), rtol=1e-2)
    g = grad_fn(meta, 3, False)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(g))
    g_stop = grad_fn(meta, 3, True)
    w, w_stop = g['layer_0']['w_hh'], g_stop['layer_0']['w_hh']
    assert float(jnp.max(jnp.abs(w))) > 0
    assert float(jnp.max(jnp.abs(w - w_stop))) > 1e-6 * float(jnp.max(jnp.abs(w)))


def test_meta_sgd_first_step_second_order():
    """theta1 = theta0 - lambda0 * grad(theta0): the gradient of a look-ahead loss w.r.t.
    lambda0 and theta0 goes through the inner gradient (second order) and matches finite
    differences; meta_sgd is the same step as an optax transformation."""
    target = jnp.array([1.0, -2.0, 0.5])

    def inner(t):
        return jnp.sum(jnp.sin(t) * target) + jnp.sum(t ** 4)

    def outer(theta0, lam0):
        g = jax.grad(inner)(theta0)
        return jnp.sum((meta_sgd_step(theta0, g, lam0) - target) ** 2)

    theta0, lam0 = jnp.array([0.3, -0.2, 0.9]), jnp.array([0.1, 0.05, 0.2])
    g_theta, g_lam = jax.grad(outer, argnums=(0, 1))(theta0, lam0)
    eps = 1e-3
    for i in range(3):
        e = jnp.zeros(3).at[i].set(eps)
        np.testing.assert_allclose(float(g_theta[i]), float(
            (outer(theta0 + e, lam0) - outer(theta0 - e, lam0)) / (2 * eps)), rtol=1e-2)
        np.testing.assert_allclose(float(g_lam[i]), float(
            (outer(theta0, lam0 + e) - outer(theta0, lam0 - e)) / (2 * eps)), rtol=1e-2)
    tx = meta_sgd(lam0)
    u, _ = tx.update(jax.grad(inner)(theta0), tx.init(theta0))
    np.testing.assert_allclose(np.asarray(optax.apply_updates(theta0, u)),
                               np.asarray(meta_sgd_step(theta0, jax.grad(inner)(theta0), lam0)))


def test_random_filter_scaling():
    params = {'cf': {'w': jnp.ones((50, 40))}, 'reg': {'w': jnp.ones((60, 50)), 'b': jnp.ones(4)}}
    r = random_filter_scales(jax.random.PRNGKey(1), params, {'cf': 1.6, 'reg': 1.3})
    lr_cf, lr_reg = np.log(np.asarray(r['cf']['w'])), np.log(np.asarray(r['reg']['w']))
    assert -1.6 <= lr_cf.min() < -1.5 and 1.5 < lr_cf.max() <= 1.6
    assert -1.3 <= lr_reg.min() < -1.2 and 1.2 < lr_reg.max() <= 1.3
    assert abs(lr_cf.mean()) < 0.05
    again = random_filter_scales(jax.random.PRNGKey(1), params, {'cf': 1.6, 'reg': 1.3})
    np.testing.assert_array_equal(np.asarray(again['cf']['w']), np.asarray(r['cf']['w']))
    other = random_filter_scales(jax.random.PRNGKey(2), params, {'cf': 1.6, 'reg': 1.3})
    assert not np.array_equal(np.asarray(other['cf']['w']), np.asarray(r['cf']['w']))
    phi = unscale_params(params, r)
    back = scale_params(phi, r)
    np.testing.assert_allclose(np.asarray(back['reg']['w']), 1.0, rtol=1e-6)
    with pytest.raises(KeyError, match='reg'):
        random_filter_scales(jax.random.PRNGKey(1), params, {'cf': 1.6})


def test_preprocess_gradients_branches():
    g = jnp.array([-0.3, 1e-6, 0.0, np.exp(-10) * 1.001, -np.exp(-10) * 0.999], jnp.float32)
    out = np.asarray(preprocess_gradients(g))
    np.testing.assert_allclose(out[0], [np.log(0.3 + 1e-6) / 10, -1], rtol=1e-5)
    np.testing.assert_allclose(out[1], [-1, np.exp(10) * 1e-6], rtol=1e-5)
    np.testing.assert_array_equal(out[2], [-1, 0])
    assert out[3, 1] == 1.0 and out[4, 0] == -1.0 and -1.0 < out[4, 1] < -0.99
