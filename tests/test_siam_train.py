"""SiamRPN++ training pieces: BatchNorm semantics, anchors and targets, losses, lr schedule,
optimizer, freezing phases, multi-device equality (hand-computed values throughout)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from helpers import assert_four_devices_match, flat_variables, numpy_variables  # noqa: E402
from siam.anchors import training_anchors  # noqa: E402
from siam.layers import BatchNorm  # noqa: E402
from siam.losses import select_cross_entropy, cls_log_probs, siamrpn_loss, weighted_l1  # noqa: E402
from siam.targets import AnchorTarget, TargetParams  # noqa: E402


# -- BatchNorm ----------------------------------------------------------------------------------

def test_batchnorm_train_mode_matches_torch_formulas():
    x = jnp.asarray([1.0, 2.0, 3.0, 6.0]).reshape(2, 1, 2, 1)
    bn = BatchNorm()
    variables = {'params': {'scale': jnp.asarray([2.0]), 'bias': jnp.asarray([1.0])},
                 'batch_stats': {'mean': jnp.asarray([0.0]), 'var': jnp.asarray([1.0])}}
    y, updated = bn.apply(variables, x, True, mutable=['batch_stats'])
    # mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5, unbiased 14 / 3.
    expected = (np.array([1, 2, 3, 6.0]) - 3) / math.sqrt(3.5 + 1e-5) * 2 + 1
    np.testing.assert_allclose(np.ravel(y), expected, rtol=1e-6)
    np.testing.assert_allclose(updated['batch_stats']['mean'], [0.3], rtol=1e-6)
    np.testing.assert_allclose(updated['batch_stats']['var'], [0.9 + 0.1 * 14 / 3], rtol=1e-6)
    # Eval mode uses the running statistics: (x - 0.3) / sqrt(1.3667 + eps) * 2 + 1.
    stats = updated['batch_stats']
    y_eval = bn.apply({'params': variables['params'], 'batch_stats': stats}, x, False)
    expected = (np.array([1, 2, 3, 6.0]) - 0.3) / math.sqrt(0.9 + 1.4 / 3 + 1e-5) * 2 + 1
    np.testing.assert_allclose(np.ravel(y_eval), expected, rtol=1e-5)
    # Not mutable: batch statistics are used, running statistics are left alone.
    y_frozen_stats = bn.apply(variables, x, True)
    np.testing.assert_allclose(y_frozen_stats, y)


# -- anchors and targets ------------------------------------------------------------------------

def test_training_anchor_grid():
    corners, centres = training_anchors(25, 255, 8)
    assert corners.shape == centres.shape == (4, 5, 25, 25)
    np.testing.assert_array_equal(centres[0, 3, 4], 31 + 8 * np.arange(25))
    np.testing.assert_array_equal(centres[1, 3, :, 6], 31 + 8 * np.arange(25))
    np.testing.assert_array_equal(centres[2, :, 0, 0], [104, 88, 64, 40, 32])
    np.testing.assert_array_equal(centres[3, :, 0, 0], [32, 40, 64, 80, 96])
    np.testing.assert_array_equal(corners[:, 2, 0, 0], [31 - 32, 31 - 32, 31 + 32, 31 + 32])


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_anchor_target_positive_pair_by_hand():
    """Target = the 64x64 anchor (a = 2) of cell (y 5, x 7): centre (87, 71). Its 3x3
    neighbourhood of 64x64 anchors has IoU >= 3136 / 5056 = 0.62 > 0.6 (positive); two cells
    away it is 3072 / 5120 = 0.6 exactly (not positive); other shapes stay below 0.6."""
    target = AnchorTarget()
    box = np.array([87 - 32, 71 - 32, 87 + 32, 71 + 32], np.float64)
    out = target(np.random.default_rng(0), box, negative=False)
    label, delta, weight = out['label'], out['delta'], out['delta_weight']
    positives = np.argwhere(label == 1)
    expected = {(2, y, x) for y in (4, 5, 6) for x in (6, 7, 8)}
    assert {tuple(p) for p in positives} == expected
    np.testing.assert_allclose(weight[label == 1], 1 / (9 + 1e-6), rtol=1e-6)
    assert weight[label != 1].sum() == 0
    np.testing.assert_allclose(delta[:, 2, 5, 7], 0.0, atol=1e-7)
    np.testing.assert_allclose(delta[:, 2, 5, 8], [(87 - 95) / 64, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(delta[:, 0, 5, 7], [0, 0, math.log(64 / 104), math.log(64 / 32)],
                               rtol=1e-6)
    negatives = np.argwhere(label == 0)
    assert len(negatives) == 48
    corners, _ = training_anchors()
    for a, y, x in negatives:
        assert _iou(corners[:, a, y, x], box) < 0.3


def test_anchor_target_keeps_at_most_16_positives():
    params = TargetParams(thr_high=0.2)
    out = AnchorTarget(params)(np.random.default_rng(1), np.array([60, 60, 190, 190.0]), False)
    assert (out['label'] == 1).sum() == 16
    np.testing.assert_allclose(out['delta_weight'].sum(), 16 / (16 + 1e-6), rtol=1e-6)


def test_anchor_target_negative_pair_window():
    """Negative pair with the distractor centred at 127: cell 12 + ceil(0 + 0.5) = 13, so the
    7x7 window covers cells 10..16; 16 of its 5 * 49 anchors become negatives."""
    out = AnchorTarget()(np.random.default_rng(2), np.array([97, 97, 157, 157.0]), True)
    negatives = np.argwhere(out['label'] == 0)
    assert len(negatives) == 16 and (out['label'] == 1).sum() == 0
    assert negatives[:, 1:].min() >= 10 and negatives[:, 1:].max() <= 16
    assert out['delta_weight'].sum() == 0


def test_anchor_target_rejects_degenerate_box():
    with pytest.raises(ValueError, match='degenerate target box'):
        AnchorTarget()(np.random.default_rng(0), np.array([50, 50, 50, 80.0]), False)


# -- losses -------------------------------------------------------------------------------------

def test_select_cross_entropy_by_hand():
    """A = 2 anchors, one cell: channels (bg a0, bg a1, fg a0, fg a1). Anchor 0 logits
    (0, ln 3) -> p_fg = 3/4 (positive); anchor 1 (0, -ln 3) -> p_bg = 3/4 (negative):
    loss = 0.5 ln(4/3) + 0.5 ln(4/3)."""
    cls = jnp.asarray([0.0, 0.0, math.log(3), -math.log(3)]).reshape(1, 1, 1, 4)
    label = jnp.asarray([1, 0]).reshape(1, 2, 1, 1)
    loss = select_cross_entropy(cls_log_probs(cls, 2), label)
    np.testing.assert_allclose(loss, math.log(4 / 3), rtol=1e-6)
    # No positive: only 0.5 * the negative term; ignored entries do not count.
    label = jnp.asarray([-1, 0]).reshape(1, 2, 1, 1)
    loss = select_cross_entropy(cls_log_probs(cls, 2), label)
    np.testing.assert_allclose(loss, 0.5 * math.log(4 / 3), rtol=1e-6)


def test_select_cross_entropy_averages_over_the_whole_batch():
    """Positives: sample 0 has p_fg 3/4, sample 1 has two with p_fg 1/2 each ->
    mean NLL (ln 4/3 + 2 ln 2) / 3; no negatives."""
    cls = np.zeros((2, 1, 2, 2), np.float32)
    cls[0, 0, 0, 1] = math.log(3)
    label = np.array([[[[1, -1]]], [[[1, 1]]]])
    loss = select_cross_entropy(cls_log_probs(jnp.asarray(cls), 1), jnp.asarray(label))
    np.testing.assert_allclose(loss, 0.5 * (math.log(4 / 3) + 2 * math.log(2)) / 3, rtol=1e-6)


def test_weighted_l1_by_hand():
    """A = 2, 1 x 2 map, B = 2: sample 0 has one positive (anchor 1, x 1) with weight 1 and
    |diff| = (1, 2, 3, 4); sample 1 has none. Loss = 10 / B = 5."""
    loc = np.zeros((2, 1, 2, 8), np.float32)
    loc[0, 0, 1, [1, 3, 5, 7]] = [1, -2, 3, -4]     # channel coord * A + a, a = 1
    loc[0, 0, 0, :] = 100.0                          # unweighted cells do not count
    delta = np.zeros((2, 4, 2, 1, 2), np.float32)
    weight = np.zeros((2, 2, 1, 2), np.float32)
    weight[0, 1, 0, 1] = 1.0
    loss = weighted_l1(jnp.asarray(loc), jnp.asarray(delta), jnp.asarray(weight), 2)
    np.testing.assert_allclose(loss, 5.0, rtol=1e-6)
    total, metrics = siamrpn_loss(jnp.zeros((2, 1, 2, 4)), jnp.asarray(loc),
                                  jnp.full((2, 2, 1, 2), -1), jnp.asarray(delta),
                                  jnp.asarray(weight), 2)
    np.testing.assert_allclose(total, 1.2 * 5.0, rtol=1e-6)
    assert float(metrics['cls_loss']) == 0.0


def test_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    cls = jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
    loc = jnp.asarray(rng.normal(size=(2, 3, 3, 8)), jnp.float32)
    label = jnp.asarray(rng.integers(-1, 2, size=(2, 2, 3, 3)))
    delta = jnp.asarray(rng.normal(size=(2, 4, 2, 3, 3)), jnp.float32)
    weight = jnp.asarray(rng.random((2, 2, 3, 3)), jnp.float32)

    def f(c, l_):
        return siamrpn_loss(c, l_, label, delta, weight, 2)[0]

    grad_cls, grad_loc = jax.grad(f, argnums=(0, 1))(cls, loc)
    eps = 1e-3
    for array, grad, index, argnum in ((cls, grad_cls, (1, 2, 0, 3), 0),
                                       (loc, grad_loc, (0, 1, 1, 5), 1)):
        bump = jnp.zeros_like(array).at[index].set(eps)
        args = [cls, loc]
        args[argnum] = array + bump
        up = f(*args)
        args[argnum] = array - bump
        down = f(*args)
        np.testing.assert_allclose(grad[index], (up - down) / (2 * eps), rtol=2e-2, atol=1e-4)


# -- schedule and optimizer ---------------------------------------------------------------------

def test_lr_spaces_match_pysot_r50_recipe():
    """The values pysot's scheduler produces for the 8-GPU r50 recipe (spec section 7)."""
    from siam.task import lr_spaces
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/siamrpn.py:r50_l234'))
    expected = [0.001, 0.00138, 0.001904, 0.002627, 0.003624, 0.005, 0.004242, 0.003598,
                0.003053, 0.00259, 0.002197, 0.001864, 0.001581, 0.001341, 0.001138, 0.000965,
                0.000819, 0.000695, 0.000589, 0.0005]
    np.testing.assert_allclose(lr_spaces(config.train), expected, rtol=2e-3)


def test_torch_sgd_matches_a_hand_loop_with_reset():
    import optax
    from tracking.train.optim import torch_sgd
    lrs = [0.1, 0.1, 0.05, 0.05]
    opt = optax.chain(optax.add_decayed_weights(0.01),
                      torch_sgd(lambda step: jnp.asarray(lrs)[step], 0.9, reset_steps=(2,)))
    p = {'w': jnp.asarray([1.0, -2.0])}
    state = opt.init(p)
    grads = [np.array([0.5, 1.0]), np.array([-1.0, 0.25]), np.array([2.0, 0.0]),
             np.array([0.1, 0.1])]
    w, buf = np.array([1.0, -2.0]), np.zeros(2)
    for step, g in enumerate(grads):
        updates, state = opt.update({'w': jnp.asarray(g, jnp.float32)}, state, p)
        p = optax.apply_updates(p, updates)
        d = g + 0.01 * w
        buf = d if step in (0, 2) else 0.9 * buf + d
        w = w - lrs[step] * buf
        np.testing.assert_allclose(p['w'], w, rtol=1e-6)


# -- the task: phases and devices ---------------------------------------------------------------

def _small_config(**train):
    from tracking.config import load_config
    overrides = ['train.batch_size=4', 'data.samples_per_epoch=4', 'train.num_epochs=3',
                 'train.warmup_epochs=1', 'train.backbone_train_epoch=1',
                 "train.backbone_train_layers=('layer2', 'layer3', 'layer4')",
                 'train.backbone_lr_mult=0.1']
    overrides += [f'train.{k}={v}' for k, v in train.items()]
    return load_config(str(REPO / 'configs/siamrpn.py:tiny'), overrides)


def _random_variables(task) -> dict:
    """The task's model variables drawn with numpy (no pretrained file in `_small_config`):
    what `task.init_variables` gives up to the random draw, without compiling the model init."""
    from siam.model import variable_shapes
    assert not task.config.train.pretrained
    return numpy_variables(variable_shapes(task.config.model), seed=0)


def _fake_batch(task, batch: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    target = task.anchor_target()
    rows = []
    for i in range(batch):
        c = rng.uniform(100, 150, 2)
        s = rng.uniform(40, 90, 2)
        box = np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2])
        rows.append(target(rng, box, negative=(i == batch - 1)))
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out['template'] = rng.uniform(0, 255, (batch, 127, 127, 3)).astype(np.float32)
    out['search'] = rng.uniform(0, 255, (batch, 255, 255, 3)).astype(np.float32)
    out['index'] = np.arange(batch)
    return out


def _two_steps(config):
    """Variables (flattened to {keystr: numpy array}) before, after phase 0 (batch seed 0) and
    after phase 1 (batch seed 1) of two train steps of `config` on this process's devices,
    and the two steps' metrics."""
    from siam.task import SiamRPNTask
    from tracking.train import loop, sharding
    task = SiamRPNTask(config)
    mesh = sharding.make_mesh()
    variables = _random_variables(task)
    optimizer = task.make_optimizer(variables['params'])
    state = loop.create_train_state(variables, optimizer, jax.random.PRNGKey(1), mesh)

    snapshots, metrics = [flat_variables(state)], []
    for phase, seed in ((0, 0), (1, 1)):
        batch = sharding.shard_batch(_fake_batch(task, seed=seed), mesh)
        state, m = loop.make_train_step(task, optimizer, mesh, phase=phase)(state, batch)
        snapshots.append(flat_variables(state))
        metrics.append(jax.device_get(m))
    return snapshots, metrics


@pytest.fixture(scope='module')
def one_device_steps():
    """`_two_steps(_small_config())` in this single-device process: shared by the phase test
    and the 4-device comparison, so the two steps compile once here."""
    assert jax.device_count() == 1
    return _two_steps(_small_config())


def test_backbone_frozen_then_unfrozen(one_device_steps):
    """Phase 0: the backbone neither moves nor updates its BatchNorm statistics; the neck and
    head do. Phase 1 (step 1): layer2..4 move (lr x 0.1) and update their statistics, conv1,
    bn1 and layer1 stay as they were."""
    from siam.task import SiamRPNTask
    assert SiamRPNTask(_small_config()).phase_starts == (1,)
    (v0, v1, v2), (m0, m1) = one_device_steps
    assert np.isfinite(float(m0['loss'])) and np.isfinite(float(m1['loss']))
    np.testing.assert_allclose(float(m0['lr']), 0.002, rtol=1e-6)
    first = {k: not np.array_equal(v0[k], v1[k]) for k in v0}
    second = {k: not np.array_equal(v1[k], v2[k]) for k in v1}
    backbone = [k for k in first if "['backbone']" in k]
    assert backbone and not any(first[k] for k in backbone)
    assert first["['params']['neck']['downsample2']['downsample_0']['kernel']"]
    assert first["['batch_stats']['neck']['downsample2']['downsample_1']['mean']"]
    assert first["['params']['rpn_head']['rpn3']['cls']['head_3']['bias']"]
    for key in backbone:
        trained = any(f"['layer{i}_" in key for i in (2, 3, 4))
        assert second[key] == trained, key


def test_pretrained_backbone_file(tmp_path):
    """A pysot-style ImageNet file (backbone keys without prefix, 'module.' prefix, an extra
    classifier) replaces exactly the backbone; a file missing a backbone weight is refused."""
    from siam import convert
    from siam.model import variable_shapes
    from siam.task import load_pretrained_backbone
    config = _small_config()
    donor = convert.to_official(numpy_variables(variable_shapes(config.model), seed=7))
    weights = {'module.' + k[len('backbone.'):]: v for k, v in donor.items()
               if k.startswith('backbone.')}
    weights['module.fc.weight'] = np.zeros((10, 4), np.float32)
    np.savez(tmp_path / 'resnet.npz', **weights)
    base = numpy_variables(variable_shapes(config.model), seed=0)
    loaded = load_pretrained_backbone(base, str(tmp_path / 'resnet.npz'), config)
    loaded_sd, base_sd = convert.to_official(loaded), convert.to_official(base)
    for key, value in loaded_sd.items():
        expected = donor[key] if key.startswith('backbone.') else base_sd[key]
        np.testing.assert_array_equal(value, expected, err_msg=key)
    del weights['module.layer2.0.conv1.weight']
    np.savez(tmp_path / 'partial.npz', **weights)
    with pytest.raises(ValueError, match=r'1 backbone weights missing.*layer2\.0\.conv1\.weight'):
        load_pretrained_backbone(base, str(tmp_path / 'partial.npz'), config)
    with pytest.raises(FileNotFoundError, match='config.train.pretrained'):
        load_pretrained_backbone(base, str(tmp_path / 'absent.pth'), config)


def _device_run(config_json: str, out: str) -> None:
    """Two steps (phase 0 then 1) on this process's devices; saves the variables to `out`."""
    import ml_collections
    snapshots, _ = _two_steps(ml_collections.ConfigDict(json.loads(config_json)))
    np.savez(out, **snapshots[-1])
    print(f'devices={jax.device_count()}', flush=True)


@pytest.mark.slow
def test_four_devices_match_one_device(tmp_path, one_device_steps):
    """Two train steps of the SiamRPN task on 4 virtual CPU devices (a subprocess) equal the
    single-device steps (this process): the global batch is one sharded array, so the same
    loss and the same BatchNorm statistics."""
    assert_four_devices_match(__file__, _small_config().to_json(), tmp_path / '4.npz',
                              one_device_steps[0][-1], timeout=600)


if __name__ == '__main__':
    _device_run(*sys.argv[1:3])
