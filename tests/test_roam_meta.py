"""ROAM meta-training step (roam/meta.py) against the official reference bundle's meta.npz, plus
the finite-difference check of the meta-gradient and the single-scan unroll of the step (which
tests/test_roam_train.py runs jitted).

meta.npz: `ROAM.forward` (training mode) on one stored 39-crop clip with stored labels, boxes,
look-ahead offsets and filter scales r, then `meta_loss.mean().backward()`. Tolerances (the
bundle's README): losses within 1e-4 relative; theta0/lambda0 gradient entries and norms within
1e-4 x max|ref|; each LSTM/linear gradient tensor within 1e-3 x max|ref| of that tensor;
positive anchors identical.
"""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.roam import get_config
from helpers import REFERENCE, reference_state_dict
from roam import meta as rmeta
from roam.convert import from_official, lstm_to_official, theta_from_flat, theta_to_flat
from roam.vgg import preprocess, vgg_features

BUNDLE = REFERENCE / 'roam_vgg16'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def run(require_shared):
    """Our meta-loss and meta-gradient on the stored clip (VGG once over the 39 crops)."""
    require_shared(BUNDLE, what='ROAM reference bundle')
    config = get_config('vgg16')
    v = from_official(reference_state_dict(BUNDLE), config)
    ref = dict(np.load(BUNDLE / 'meta.npz'))
    crops = np.transpose(ref['crops'], (0, 2, 3, 1))
    vgg = jax.jit(lambda p, x: vgg_features(p, preprocess(x)))
    feats = jnp.concatenate([vgg(v['vgg'], crops[i:i + 13]) for i in range(0, 39, 13)], 0)
    clip = rmeta.ClipData(feats, jnp.asarray(ref['label_maps'][:, 0]),
                          jnp.asarray(ref['gt_bboxes']), jnp.asarray(ref['deltas'], jnp.int32),
                          theta_from_flat(jnp.asarray(ref['r']), config))
    meta = {k: v[k] for k in ('theta0', 'lambda0', 'meta_opt')}
    step = jax.jit(jax.value_and_grad(lambda m, c: rmeta.meta_loss(m, c, config), has_aux=True))
    (loss, aux), grads = step(meta, clip)
    return dict(config=config, ref=ref, loss=loss, aux=jax.device_get(aux),
                grads=jax.device_get(grads))


def test_meta_losses(run):
    """Per-step update and look-ahead losses (6 x 4), the three averages, the filter sizes."""
    ref, aux = run['ref'], run['aux']
    np.testing.assert_array_equal(aux['filter_sizes'], ref['filter_sizes'].astype(np.int32))
    rel = np.abs(aux['losses'] - ref['losses']) / np.abs(ref['losses'])
    print(f'\nper-step losses: max rel {rel.max():.1e}')
    assert rel.max() <= 1e-4, rel
    for name, value in (('meta_loss', run['loss']), ('map_loss', aux['map_loss']),
                        ('bbox_loss', aux['bbox_loss'])):
        r = abs(float(value) - float(ref[name])) / abs(float(ref[name]))
        print(f'{name} rel {r:.1e}')
        assert r <= 1e-4, (name, r)


def test_meta_positive_anchors(run):
    """The positives of all 12 loss evaluations identical (as sets; the bundle's tie rule)."""
    ref, aux = run['ref'], run['aux']
    ours = [aux['pos_update0'], aux['pos_look'][0]]
    for k in range(5):
        ours += [aux['pos_update'][k], aux['pos_look'][k + 1]]
    np.testing.assert_array_equal([len(p) for p in ours], ref['pos_count'])
    starts = np.concatenate([[0], np.cumsum(ref['pos_count'])])
    for n, p in enumerate(ours):
        np.testing.assert_array_equal(np.sort(p), np.sort(ref['pos_idx'][starts[n]:starts[n + 1]]),
                                      err_msg=f'loss evaluation {n}')


def test_meta_inner_gradients_and_rates(run):
    """Inner gradients (norm, 1,024 entries) of the 6 steps and the LSTM rates of steps 1..5."""
    ref, aux = run['ref'], run['aux']
    idx = ref['idx']
    g = np.stack([np.asarray(theta_to_flat(jax.tree_util.tree_map(lambda x: x[t],
                                                                  aux['inner_grads'])))
                  for t in range(6)])
    norms = np.linalg.norm(g.astype(np.float64), axis=1)
    rel = np.abs(norms - ref['inner_grad_norm']) / ref['inner_grad_norm']
    print(f'\ninner grad norms rel {rel.max():.1e}')
    assert rel.max() <= 1e-4
    for t in range(6):
        d = np.max(np.abs(g[t][idx] - ref['inner_grad_idx'][t]))
        assert d <= 1e-4 * np.max(np.abs(ref['inner_grad_idx'][t])), (t, d)
    rates = np.stack([np.asarray(theta_to_flat(jax.tree_util.tree_map(lambda x: x[t],
                                                                      aux['rates'])))
                      for t in range(5)])
    rel = np.max(np.abs(rates[:, idx] - ref['lr_steps_idx']) / ref['lr_steps_idx'])
    print(f'rates rel {rel:.1e}')
    assert rel <= 1e-4
    np.testing.assert_allclose(rates.mean(1), ref['lr_steps_mean'], rtol=1e-4)


def test_meta_gradient_lstm(run):
    """Every LSTM/linear meta-gradient tensor within 1e-3 x max|ref| of that tensor."""
    ref = run['ref']
    ours = lstm_to_official(run['grads']['meta_opt'])
    report = []
    for key, value in ours.items():
        r = ref[f'grad/{key}']
        value = np.asarray(value).reshape(r.shape)
        d = float(np.max(np.abs(value - r)))
        bound = 1e-3 * float(np.max(np.abs(r)))
        report.append(f'{key.split(".")[-1]} {d / np.max(np.abs(r)):.1e}')
        assert d <= bound, (key, d, bound)
    print('\nLSTM grads (x max|ref|): ' + ', '.join(report))


def test_meta_gradient_theta0_lambda0(run):
    """theta0 / lambda0 meta-gradients: norms, per-segment norms and the 1,024 entries within
    1e-4 x max|ref|."""
    ref, grads, config = run['ref'], run['grads'], run['config']
    from roam.convert import flat_segments
    segs = flat_segments(config)
    report = []
    for name in ('theta0', 'lambda0'):
        flat = np.asarray(theta_to_flat(grads[name]), np.float64)
        norm = np.linalg.norm(flat)
        r = float(ref[f'{name}_grad_norm'])
        assert abs(norm - r) <= 1e-4 * abs(r), (name, norm, r)
        seg = np.array([np.linalg.norm(flat[a:b]) for _, a, b, _ in segs])
        rseg = ref[f'{name}_grad_seg_norm']
        assert np.max(np.abs(seg - rseg)) <= 1e-4 * np.max(np.abs(rseg)), (name, seg, rseg)
        ridx = ref[f'{name}_grad_idx']
        d = np.max(np.abs(flat[ref['idx']] - ridx)) / np.max(np.abs(ridx))
        report.append(f'{name}: norm rel {abs(norm - r) / r:.1e}, entries {d:.1e} x max|ref|')
        assert d <= 1e-4, (name, d)
    print('\n' + '; '.join(report))


# ------------------------------------------------------------------ small-model checks

def _tiny_clip(config, key, n_samples, dtype=jnp.float32):
    """A random clip of the tiny model's shapes: features, Gaussian labels and boxes."""
    m = config.model
    k1, k2, k3, k4 = jax.random.split(key, 4)
    feats = jax.random.uniform(k1, (n_samples, m.map_size, m.map_size, m.feat_channels), dtype)
    offsets = jax.random.randint(k2, (n_samples, 2), -8, 9).astype(dtype)
    wh = jax.random.uniform(k3, (n_samples, 2), dtype, 10.0, 24.0)
    boxes = jnp.concatenate([offsets, wh], -1)
    from roam import model as rm
    labels = jax.vmap(lambda b: rm.box_label(b, config))(boxes).astype(dtype)
    deltas = jax.random.randint(k4, (config.train.time_step,), 0, config.train.look_ahead)
    return feats, labels, boxes, deltas


def test_unroll_is_one_scan_and_step_jits():
    """The jaxpr of the meta-gradient has a scan of length time_step - 1 over the LSTM steps and
    no per-step unroll (one look-ahead loss outside it, for step 0)."""
    config = get_config('tiny')
    lopt = rmeta.make_lopt(config)
    from roam import model as rm
    meta = dict(theta0=rm.init_theta(jax.random.PRNGKey(0), config, 1.0),
                lambda0=rm.init_rates(config, 1e-3), meta_opt=lopt.init(jax.random.PRNGKey(1)))
    feats, labels, boxes, deltas = _tiny_clip(config, jax.random.PRNGKey(2),
                                              rmeta.clip_samples(config))
    scales = jax.tree_util.tree_map(jnp.ones_like, meta['theta0'])
    clip = rmeta.ClipData(feats, labels, boxes, deltas, scales)
    fn = jax.value_and_grad(lambda m: rmeta.meta_loss(m, clip, config)[0])
    jaxpr = jax.make_jaxpr(fn)(meta)
    scans = [e for e in jaxpr.eqns if e.primitive.name == 'scan']
    assert len(scans) >= 1
    assert {int(e.params['length']) for e in scans} == {config.train.time_step - 1}
    # top_k appears once per loss evaluation outside the scan body: step 0's update and
    # look-ahead losses (plus their transposes), never once per LSTM step.
    top_level_topk = sum(e.primitive.name == 'top_k' for e in jaxpr.eqns)
    assert top_level_topk <= 2, top_level_topk
    # That this step jits and gives finite values: tests/test_roam_train.py runs it jitted
    # inside the loop's train step; the values: the fixture above and the finite differences.


FD_SCRIPT = textwrap.dedent('''
    import jax
    jax.config.update('jax_enable_x64', True)
    import jax.numpy as jnp, numpy as np
    from configs.roam import get_config
    from roam import meta as rmeta, model as rm
    from roam.optim import LSTMCarry, lstm_cell, scale_params
    config = get_config('tiny')
    m = config.model
    m.feat_channels, m.cf_channels, m.map_size, m.base_filter_size = 4, 3, 11, (5, 5)
    m.max_filter_size, m.base_target_size, m.anchor_pos_num = 11, 8, 4
    m.lstm_hidden = 4
    config.train.look_ahead, config.train.time_step = 2, 3
    config.train.init_aug_ratios, config.train.init_aug_scales = (1.0,), (1.0, 0.8)
    config.train.clip_length = 1 + 3 * 2
    T, tau, n_init = 3, 2, 2
    lopt = rmeta.make_lopt(config)
    tmap = jax.tree_util.tree_map
    f64 = lambda t: tmap(lambda x: jnp.asarray(x, jnp.float64), t)
    meta = f64(dict(theta0=rm.init_theta(jax.random.PRNGKey(0), config, 1.0),
                    lambda0=rm.init_rates(config, 0.05),
                    meta_opt=lopt.init(jax.random.PRNGKey(1))))
    meta['meta_opt']['linear']['bias'] = jnp.asarray([-1.0])
    n = rmeta.clip_samples(config)
    k = jax.random.split(jax.random.PRNGKey(2), 5)
    feats = jax.random.uniform(k[0], (n, 11, 11, 4), jnp.float64)
    boxes = jnp.concatenate([jax.random.randint(k[1], (n, 2), -6, 7).astype(jnp.float64),
                             jax.random.uniform(k[2], (n, 2), jnp.float64, 6.0, 14.0)], -1)
    labels = jax.vmap(lambda b: rm.box_label(b, config))(boxes).astype(jnp.float64)
    deltas_np = np.asarray([1, 0, 1], np.int32)
    deltas = jnp.asarray(deltas_np)
    scales = f64(tmap(lambda x: jnp.exp(0.5 * jax.random.uniform(k[3], x.shape, jnp.float64,
                                                                  -1, 1)), meta['theta0']))
    clip = rmeta.ClipData(feats, labels, boxes, deltas, scales)
    run = jax.jit(lambda mm: rmeta.meta_loss(mm, clip, config))
    grads = jax.jit(jax.grad(lambda mm: rmeta.meta_loss(mm, clip, config)[0]))(meta)
    _, aux = run(meta)

    # theta0 / lambda0: only step 0's look-ahead loss reaches them (second order through the
    # first step), so d meta_loss = d look_0 / T.
    def look0(tl):
        a = run(dict(meta, theta0=tl[0], lambda0=tl[1]))[1]
        return a['losses'][0, 2] + a['losses'][0, 3]

    # LSTM: the objective with the stopped quantities (phi_k, g_k, ell_k, previous rate) held
    # at their values in the run above, rebuilt here step by step on the flat coordinates.
    flat = lambda t: jnp.concatenate([x.reshape(-1) for x in jax.tree_util.tree_leaves(t)])
    def unflat(v, like):
        leaves = jax.tree_util.tree_leaves(like)
        parts = jnp.split(v, np.cumsum([x.size for x in leaves])[:-1])
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like),
                                            [p.reshape(x.shape) for p, x in zip(parts, leaves)])
    r = flat(scales)
    g = [flat(tmap(lambda x: x[t], aux['inner_grads'])) for t in range(T)]
    rates = [flat(tmap(lambda x: x[t], aux['rates'])) for t in range(T - 1)]
    phi = [flat(meta['theta0']) / r]
    phi.append(phi[0] - flat(meta['lambda0']) * g[0])
    for t in range(1, T - 1):
        phi.append(phi[t] - rates[t - 1] * g[t])
    ell = aux['losses'][:, 0] + aux['losses'][:, 1]
    prev = [flat(meta['lambda0'])] + rates

    def lstm_objective(mo):
        carry = LSTMCarry(*[jnp.zeros((m.lstm_layers, r.size, m.lstm_hidden))] * 2)
        total = 0.0
        for t in range(1, T):
            x = lopt.inputs(prev[t - 1], g[t], phi[t], ell[t])
            rate, carry = lstm_cell(mo, carry, x.astype(jnp.float64))
            new = unflat(phi[t] - rate * g[t], meta['theta0'])
            j = n_init + t * tau + int(deltas_np[t])
            fs = rm.compute_filter_size(boxes[n_init + t * tau, 2:], config)
            lv, _ = rm.update_loss(scale_params(new, scales), feats[j:j + 1], labels[j:j + 1],
                                   boxes[j:j + 1], fs, config)
            total = total + lv
        return total
    lstm_objective = jax.jit(lstm_objective)

    rng = np.random.default_rng(0)

    # theta0 / lambda0: 3 entries of every leaf, eps 1e-6.
    init_errors = []
    leaves, tdef = jax.tree_util.tree_flatten((meta['theta0'], meta['lambda0']))
    gl = tdef.flatten_up_to((grads['theta0'], grads['lambda0']))
    for li, (x, gx) in enumerate(zip(leaves, gl)):
        for j in rng.choice(x.size, min(3, x.size), replace=False):
            eps = 1e-6 * max(1.0, abs(float(x.reshape(-1)[j])))
            def at(d):
                xx = x.reshape(-1).at[j].add(d).reshape(x.shape)
                return float(look0(tdef.unflatten(leaves[:li] + [xx] + leaves[li + 1:])))
            fd = (at(eps) - at(-eps)) / (2 * eps) / T
            an = float(gx.reshape(-1)[j])
            init_errors.append(abs(fd - an) / max(1e-8, abs(an), abs(fd)))
            print('init', li, j, an, fd, init_errors[-1])

    # LSTM: the objective is ~8e4 here, so a central difference's cancellation error is about
    # u |f| / eps = 1e-16 * 8e4 / eps: 1e-5 absolute at eps 1e-6, as large as the smallest
    # entries' derivatives. Each leaf is checked instead along two random unit directions at
    # eps 1e-4 (the directional derivatives are 1e1..1e5, so rounding stays ~1e-8 relative).
    leaves, tdef = jax.tree_util.tree_flatten(meta['meta_opt'])
    gl = tdef.flatten_up_to(grads['meta_opt'])

    def directional_errors(objective, grad_leaves, tag):
        errors = []
        for li, (x, gx) in enumerate(zip(leaves, grad_leaves)):
            for _ in range(2):
                v = rng.standard_normal(x.shape)
                v = jnp.asarray(v / np.linalg.norm(v))
                f = lambda d: float(objective(
                    tdef.unflatten(leaves[:li] + [x + d * v] + leaves[li + 1:])))
                fd = (f(1e-4) - f(-1e-4)) / 2e-4 / T
                an = float(jnp.vdot(gx, v))
                errors.append(abs(fd - an) / max(1e-8, abs(an), abs(fd)))
                print(tag, li, an, fd, errors[-1])
        return errors

    lstm_errors = directional_errors(lstm_objective, gl, 'lstm')
    # The rebuilt objective's own jax.grad against the meta-gradient, entry by entry.
    rebuilt = jax.grad(lstm_objective)(meta['meta_opt'])
    grad_errors = [float(jnp.max(jnp.abs(a / T - b)) / jnp.max(jnp.abs(b)))
                   for a, b in zip(tdef.flatten_up_to(rebuilt), gl)]

    # train.meta_gradient = 'full': phi_k and g_k are not stopped inside the LSTM steps, only
    # the LSTM's inputs are. Same forward; theta0 / lambda0 get the same gradient (step 0's
    # look-ahead loss only); the LSTM's gradient is that of the unrolled objective with the
    # inputs held: phi and the inner gradients are recomputed along the way here.
    config.train.meta_gradient = 'full'
    run_full = jax.jit(lambda mm: rmeta.meta_loss(mm, clip, config))
    grads_full = jax.jit(jax.grad(lambda mm: rmeta.meta_loss(mm, clip, config)[0]))(meta)
    same_forward = float(abs(run_full(meta)[0] - run(meta)[0]))
    same_init = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree_util.tree_leaves((grads_full['theta0'], grads_full['lambda0'])),
        jax.tree_util.tree_leaves((grads['theta0'], grads['lambda0']))))
    def flat_loss(p, lo, n, fs):
        return rm.update_loss(scale_params(unflat(p, meta['theta0']), scales), feats[lo:lo + n],
                              labels[lo:lo + n], boxes[lo:lo + n], fs, config)[0]
    def lstm_objective_full(mo):
        carry = LSTMCarry(*[jnp.zeros((m.lstm_layers, r.size, m.lstm_hidden))] * 2)
        p, total = phi[1], 0.0
        for t in range(1, T):
            first = n_init + t * tau
            fs = rm.compute_filter_size(boxes[first, 2:], config)
            gt = jax.grad(flat_loss)(p, first - tau, tau, fs)
            x = lopt.inputs(prev[t - 1], g[t], phi[t], ell[t])
            rate, carry = lstm_cell(mo, carry, x.astype(jnp.float64))
            p = p - rate * gt
            total = total + flat_loss(p, first + int(deltas_np[t]), 1, fs)
        return total
    lstm_objective_full = jax.jit(lstm_objective_full)
    full_value = abs(float(lstm_objective_full(meta['meta_opt']))
                     - float(jnp.sum(aux['losses'][1:, 2] + aux['losses'][1:, 3])))
    gl_full = tdef.flatten_up_to(grads_full['meta_opt'])
    full_errors = directional_errors(lstm_objective_full, gl_full, 'full')
    differs = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                  for a, b in zip(gl_full, gl))
    print('FULL', same_forward, same_init, full_value, max(full_errors), differs)
    print('RESULT', max(init_errors), max(lstm_errors), max(grad_errors))
''')


def test_meta_gradient_finite_differences():
    """float64 (JAX x64, in a subprocess) on a small model with 2 LSTM steps: the meta-gradient
    against central differences of
    - for theta0 / lambda0: step 0's look-ahead loss / T (the only term that reaches them:
      second order through the lambda0 step), 3 entries of every leaf at eps 1e-6: every entry
      within 1e-5 relative;
    - for the LSTM: the objective with the quantities the official code detaches (phi_k, the
      inner gradient, the update loss, the previous rate) held at their values, rebuilt
      independently in the script from the run's own inner gradients and rates (the meta loss
      itself also moves through those detached paths, which the official gradient ignores):
      the directional derivative of every leaf along two random unit directions within 1e-6
      relative (measured: 1e-8). Not per entry: this objective is ~8e4, so a central
      difference's cancellation error (u |f| / eps) is 1e-5 absolute at eps 1e-6 and 1e-7 at
      1e-4, as large as the derivatives of the entries that act only through the carry of the
      second LSTM step (1e-7..1e-2). Entry by entry, jax.grad of the rebuilt objective equals
      the meta-gradient within 1e-8 of each leaf's largest entry (measured: 7e-10);
    - train.meta_gradient = 'full' (the LSTM's gradient through the whole unroll): the same
      forward and theta0/lambda0 gradient as the official mode (exactly), an LSTM gradient
      that differs from it, and against central differences of the unrolled objective with
      only the LSTM's inputs held (phi_k and the inner gradients recomputed along the way),
      every leaf along two random directions within 1e-6 relative (measured: 1e-7)."""
    env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', FD_SCRIPT], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    init_worst, lstm_worst, rebuilt_worst = (float(v) for v in lines[-1].split()[1:])
    same_forward, same_init, full_value, full_worst, full_differs = (
        float(v) for v in lines[-2].split()[1:])
    print(f'\nfinite differences: theta0/lambda0 worst {init_worst:.1e}; LSTM directional worst '
          f'{lstm_worst:.1e}; rebuilt objective\'s jax.grad vs meta-gradient {rebuilt_worst:.1e}')
    assert init_worst <= 1e-5, out.stdout
    assert lstm_worst <= 1e-6, out.stdout
    assert rebuilt_worst <= 1e-8, out.stdout
    print(f"meta_gradient='full': forward {same_forward:.1e} and theta0/lambda0 gradient "
          f"{same_init:.1e} from the official mode's; rebuilt objective {full_value:.1e} from "
          f"the run's look-ahead sum; LSTM directional worst {full_worst:.1e}; LSTM gradient "
          f"{full_differs:.1e} (relative) from the official one")
    assert same_forward == 0.0 and same_init == 0.0, out.stdout
    assert full_value <= 1e-9 * 8e4, out.stdout
    assert full_worst <= 1e-6, out.stdout
    assert full_differs > 1e-3, out.stdout


def test_unknown_meta_gradient_mode_names_the_key():
    config = get_config('tiny')
    config.train.meta_gradient = 'first_order'
    with pytest.raises(ValueError, match='config.train.meta_gradient'):
        rmeta.meta_gradient_mode(config)
