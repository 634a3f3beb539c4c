"""SiamAttn training: refinement losses and targets by hand, the RoI sampling rule, the
RoI-aligned mask target, gradients of every parameter group, the mask loss's weight, the
backbone schedule, one jitted train step and 4 devices == 1 (docs/siamattn.md, "Training")."""
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

from helpers import assert_four_devices_match, flat_variables  # noqa: E402
from siam.losses import bce_with_logits, mask_loss, refine_box_loss, smooth_l1  # noqa: E402
from siam.targets import (box_refine_targets, decode_proposals, roi_mask_targets,  # noqa: E402
                          roi_rows, sample_rois)


# -- losses by hand -----------------------------------------------------------------------------

def test_smooth_l1_and_box_loss_by_hand():
    np.testing.assert_allclose(smooth_l1(jnp.asarray([0.0, 0.5, -0.5, 1.0, -3.0])),
                               [0.0, 0.125, 0.125, 0.5, 2.5])
    deltas = jnp.zeros((2, 2, 4))
    targets = jnp.asarray([[[0.5, 0.0, 2.0, 0.0], [0.0, -1.0, 0.0, 0.0]],
                           [[9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]])
    # Image 0 only (image 1 is a negative pair): (0.125 + 1.5 + 0.5) / (4 x 2 RoIs).
    loss = refine_box_loss(deltas, targets, jnp.asarray([1.0, 0.0]))
    np.testing.assert_allclose(loss, (0.125 + 1.5 + 0.5) / 8, rtol=1e-6)
    assert float(refine_box_loss(deltas, targets, jnp.zeros(2))) == 0.0


def test_mask_bce_and_ohem_by_hand():
    logits = jnp.asarray([0.0, 2.0, -1.0, 3.0]).reshape(1, 1, 2, 2)
    targets = jnp.asarray([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    per_pixel = [math.log(2), 2 + math.log1p(math.exp(-2)), math.log1p(math.exp(-1)),
                 math.log1p(math.exp(-3))]
    np.testing.assert_allclose(bce_with_logits(logits, targets).ravel(), per_pixel, rtol=1e-6)
    np.testing.assert_allclose(mask_loss(logits, targets, jnp.ones(1)), np.mean(per_pixel),
                               rtol=1e-6)
    # OHEM 0.5: the mean of the 2 largest of the 4 pixel losses.
    top2 = sorted(per_pixel)[-2:]
    np.testing.assert_allclose(mask_loss(logits, targets, jnp.ones(1), ohem=0.5), np.mean(top2),
                               rtol=1e-6)
    # Two images, the second without a mask: only the first counts.
    both = jnp.concatenate([logits, 5 * logits], 0)
    np.testing.assert_allclose(mask_loss(both, jnp.concatenate([targets, targets], 0),
                                         jnp.asarray([1.0, 0.0])), np.mean(per_pixel), rtol=1e-6)
    assert float(mask_loss(both, jnp.concatenate([targets, targets]), jnp.zeros(2))) == 0.0


# -- targets ------------------------------------------------------------------------------------

def test_decode_proposals_by_hand():
    from siam.anchors import training_anchors
    _, centres = training_anchors(25, 255, 8)
    loc = np.zeros((1, 25, 25, 20), np.float32)
    # Anchor a = 2 (64 x 64) of cell (y 3, x 4): channels coord * A + a.
    loc[0, 3, 4, 0 * 5 + 2] = 0.5
    loc[0, 3, 4, 3 * 5 + 2] = math.log(2.0)
    out = np.asarray(decode_proposals(jnp.asarray(loc), centres, 5)).reshape(5, 25, 25, 4)
    np.testing.assert_allclose(out[2, 3, 4], [31 + 32 + 32, 31 + 24, 64, 128], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], centres[:, 0, 0, 0], rtol=1e-6)


def test_box_targets_invert_the_tracker_refinement():
    """The tracker refines a box by cx' = dx std w + cx, w' = exp(dw std) w (std 0.1 / 0.2):
    applied to the targets it gives back the ground truth."""
    boxes = jnp.asarray([[[100.0, 120.0, 40.0, 60.0], [90.0, 110.0, 30.0, 50.0]]])
    gt = jnp.asarray([[80.0, 95.0, 130.0, 145.0]])          # centre (105, 120), 50 x 50
    d = np.asarray(box_refine_targets(boxes, gt)) * np.array([0.1, 0.1, 0.2, 0.2])
    b = np.asarray(boxes)
    np.testing.assert_allclose(d[..., 0] * b[..., 2] + b[..., 0], 105, rtol=1e-6)
    np.testing.assert_allclose(d[..., 1] * b[..., 3] + b[..., 1], 120, rtol=1e-6)
    np.testing.assert_allclose(np.exp(d[..., 2]) * b[..., 2], 50, rtol=1e-6)
    np.testing.assert_allclose(np.exp(d[..., 3]) * b[..., 3], 50, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(box_refine_targets(boxes, gt))[0, 0],
                               [5 / 40 / 0.1, 0.0, math.log(50 / 40) / 0.2,
                                math.log(50 / 60) / 0.2], rtol=1e-5, atol=1e-6)


def test_roi_rows_conventions():
    rows = np.asarray(roi_rows(jnp.asarray([[[100.0, 50.0, 20.0, 10.0]], [[10.0, 10.0, 4.0,
                                                                           2.0]]]), True))
    np.testing.assert_allclose(rows, [[0, 90.5, 45.5, 109.5, 54.5], [1, 8.5, 9.5, 11.5, 10.5]])
    rows = np.asarray(roi_rows(jnp.asarray([[[100.0, 50.0, 20.0, 10.0]]]), False))
    np.testing.assert_allclose(rows, [[0, 90, 45, 110, 55]])


def _cxcywh(x1, y1, x2, y2):
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def test_roi_sampling_rule():
    """Eligible = IoU >= 0.5 with the target among the clipped proposals and the target itself;
    distinct draws when there are enough, with replacement otherwise."""
    gt = jnp.asarray([[100.0, 100.0, 140.0, 140.0]])
    proposals = jnp.asarray([[
        _cxcywh(100, 100, 140, 140),      # IoU 1
        _cxcywh(100, 100, 140, 160),      # 1600 / 2400 = 0.667
        _cxcywh(100, 100, 140, 180),      # 1600 / 3200 = 0.5 exactly: eligible
        _cxcywh(100, 100, 140, 181),      # 1600 / 3240 < 0.5
        _cxcywh(0, 0, 40, 40),            # 0
        _cxcywh(100, 100, 140, 400),      # clipped to y2 = 255: 1600 / 6200 < 0.5
    ]])
    eligible = {0, 1, 2, 6}               # 6: the target box appended to the candidates
    for seed in range(5):
        out = sample_rois(jax.random.PRNGKey(seed), proposals, gt, 3)
        idx = np.asarray(out['index'])[0]
        assert int(out['eligible'][0]) == 4
        assert set(idx.tolist()) <= eligible and len(set(idx.tolist())) == 3
        assert np.all(np.asarray(out['iou']) >= 0.5)
        np.testing.assert_allclose(out['boxes'][0, 0], np.asarray(
            jnp.concatenate([proposals[0], jnp.asarray([_cxcywh(100, 100, 140, 140)])]))[idx[0]])
    drawn = set()
    for seed in range(20):
        out = sample_rois(jax.random.PRNGKey(seed), proposals, gt, 8)   # > 4: with replacement
        idx = np.asarray(out['index'])[0]
        assert set(idx.tolist()) <= eligible and len(idx) == 8
        drawn |= set(idx.tolist())
    assert drawn == eligible
    # A target no proposal overlaps: every RoI is the target box.
    far = jnp.asarray([[0.0, 0.0, 20.0, 20.0]])
    out = sample_rois(jax.random.PRNGKey(0), proposals[:, 1:4], far, 4)
    np.testing.assert_array_equal(out['index'], [[3, 3, 3, 3]])


def test_mask_rois_drawn_on_their_own_with_mask_roi_fg_thresh():
    """train.mask_roi_fg_thresh 0 (official): the mask RoIs are the first mask_rois box RoIs;
    > 0: drawn separately among the candidates with IoU >= it (the target box always is one)."""
    from siam.attn_task import SiamAttnTask
    from siam.targets import corners_iou, cxcywh_to_corners

    search_box = jnp.asarray([[100.0, 110.0, 160.0, 150.0], [60.0, 70.0, 130.0, 120.0]])
    for thresh in (0.0, 0.8):
        task = SiamAttnTask(_tiny_config(**{'train.mask_roi_fg_thresh': thresh,
                                            'train.mask_rois': 3}))
        size = int(task.config.data.output_size)
        loc = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (2, size, size, 4 * task.anchor_num))
        rois = task.select_rois(jax.random.PRNGKey(0), search_box)(None, loc)
        assert rois['mask_boxes'].shape == (2, 3, 4)
        assert rois['mask_rois'].shape == (6, 5)
        iou = np.asarray(corners_iou(cxcywh_to_corners(rois['mask_boxes']), search_box[:, None]))
        if thresh == 0:
            np.testing.assert_array_equal(rois['mask_boxes'], rois['boxes'][:, :3])
            assert iou.min() >= 0.5 - 1e-6
        else:
            assert iou.min() >= 0.8 - 1e-6
            assert not np.array_equal(np.asarray(rois['mask_boxes']),
                                      np.asarray(rois['boxes'][:, :3]))


def test_roi_aligned_mask_target_on_a_hand_made_mask():
    mask = np.zeros((1, 8, 8), np.uint8)
    mask[0, :, :4] = 1                                     # left half
    mask[0, 6:, :] = 1                                     # and the bottom two rows

    def target(x1, y1, x2, y2, size):
        box = jnp.asarray([[_cxcywh(x1, y1, x2, y2)]], jnp.float32)
        return np.asarray(roi_mask_targets(jnp.asarray(mask), box, size))[0, 0]

    # Whole map in 4 x 4 cells of 2 px: cell centres at pixel boundaries 1, 3, 5, 7 -> the
    # bilinear value between two equal pixels.
    np.testing.assert_array_equal(target(0, 0, 8, 8, 4), [[1, 1, 0, 0], [1, 1, 0, 0],
                                                           [1, 1, 0, 0], [1, 1, 1, 1]])
    # [3, 5) x [0, 2) in 2 x 2: centres x = 3.5 (pixel 3: 1) and 4.5 (pixel 4: 0).
    np.testing.assert_array_equal(target(3, 0, 5, 2, 2), [[1, 0], [1, 0]])
    # Half outside the crop: zero there. [-4, 4) x [4, 8): centres x = -2, 2; y = 5, 7.
    np.testing.assert_array_equal(target(-4, 4, 4, 8, 2), [[0, 1], [0, 1]])
    # Bilinear 0.5 counts as inside: x = 4.0 is halfway between pixel 3 (1) and 4 (0).
    np.testing.assert_array_equal(target(3.5, 0, 4.5, 1, 1), [[1]])
    np.testing.assert_array_equal(target(3.6, 0, 4.6, 1, 1), [[0]])


# -- the task -----------------------------------------------------------------------------------

def _tiny_config(**overrides):
    from tracking.config import load_config
    items = ['train.batch_size=2', 'data.samples_per_epoch=2']
    items += [f'{k}={v}' for k, v in overrides.items()]
    return load_config(str(REPO / 'configs/siamattn.py:tiny'), items)


def _fake_batch(task, batch: int = 2, seed: int = 0, has_mask=None) -> dict:
    rng = np.random.default_rng(seed)
    target = task.anchor_target()
    rows = []
    for i in range(batch):
        c = rng.uniform(110, 145, 2)
        s = rng.uniform(40, 80, 2)
        box = np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2])
        negative = batch > 2 and i == batch - 1
        row = target(rng, box, negative=negative)
        mask = np.zeros((255, 255), np.uint8)
        mask[int(box[1]):int(box[3]), int(box[0]):int(c[0])] = 1     # left half of the box
        row.update(search_box=box.astype(np.float32), negative=np.int32(negative),
                   search_mask=mask,
                   has_mask=np.int32(1 if has_mask is None else has_mask[i]))
        rows.append(row)
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out['template'] = rng.uniform(0, 255, (batch, 127, 127, 3)).astype(np.float32)
    out['search'] = rng.uniform(0, 255, (batch, 255, 255, 3)).astype(np.float32)
    out['index'] = np.arange(batch)
    return out


GROUPS = ('backbone', 'neck', 'feature_enhance', 'rpn_head', 'feature_fusion', 'bbox_head',
          'mask_head')


def _moved(before: dict, after: dict, prefix: str) -> list[str]:
    """Keys under `prefix` whose value changed in the step."""
    return [k for k in before if k.startswith(prefix) and not np.array_equal(before[k], after[k])]


def test_every_parameter_group_gets_a_finite_nonzero_gradient(one_device_step):
    """The step of `stepper` (SGD, no weight decay): a parameter moves iff its gradient is
    nonzero, so every group moving with finite values is every group getting a finite nonzero
    gradient. tiny trains everything from step 0; the loss is finite."""
    from siam.attn_task import SiamAttnTask
    assert SiamAttnTask(_tiny_config()).phase_starts == ()
    before, after, metrics = one_device_step
    assert np.isfinite(float(metrics['loss']))
    assert sorted({k.split("']")[1].lstrip("['") for k in before if k.startswith("['params']")}
                  ) == sorted(GROUPS)
    for key, value in after.items():
        assert np.all(np.isfinite(value)), key
    for group in GROUPS:
        assert _moved(before, after, f"['params']['{group}']"), group
    # The attention gains (zero at init), the fusion convs and the box head's last layer.
    for level in range(3):
        for gain in (f'pams_{level}', f'cam_uses_{level}'):
            key = f"['params']['feature_enhance']['{gain}']['gamma']"
            assert not np.any(before[key]) and np.all(after[key] != 0), key
    assert _moved(before, after, "['params']['bbox_head']['tail_det_box']['kernel']")
    assert _moved(before, after,
                  "['params']['feature_fusion']['lateral_convs_0']['conv']['kernel']")
    for key in ('cls_loss', 'loc_loss', 'box_loss', 'mask_loss', 'mask_iou', 'roi_iou'):
        assert np.isfinite(float(metrics[key])), key
    assert float(metrics['box_loss']) > 0 and float(metrics['mask_loss']) > 0
    assert float(metrics['roi_iou']) >= 0.5


def test_mask_loss_is_zero_weighted_without_a_mask(stepper):
    """has_mask 0 everywhere: mask loss 0 and the mask head (its only loss) does not move, i.e.
    gets no gradient; the box head still learns. One image with a mask: the mask head moves."""
    before, after, metrics = stepper(has_mask=(0, 0, 0, 0))
    assert float(metrics['mask_loss']) == 0.0
    assert not _moved(before, after, "['params']['mask_head']"), 'mask head moved without a mask'
    assert _moved(before, after, "['params']['bbox_head']['tail_det_box']['kernel']")
    before, after, metrics = stepper(has_mask=(0, 1, 0, 0))
    assert float(metrics['mask_loss']) > 0
    assert _moved(before, after, "['params']['mask_head']")


def test_r50_backbone_schedule_and_groups():
    """configs/siamattn.py:r50_l234: backbone frozen for 10 epochs, then layer2-4 at lr x 0.05;
    the DSA, fusion, box and mask heads train at lr x 1 from step 0 (all in the optimizer)."""
    from siam.attn_task import SiamAttnTask
    from siam.siamattn import variable_shapes
    from tracking.config import load_config
    from tracking.trees import path_names
    config = load_config(str(REPO / 'configs/siamattn.py:r50_l234'))
    task = SiamAttnTask(config)
    assert task.phase_starts == (10 * task.steps_per_epoch,)
    assert (config.train.box_weight, config.train.mask_weight, config.train.rois) == (1.0, 0.5, 16)
    params = variable_shapes(config.model)['params']
    for step, backbone in ((0, {'layer1': 0.0, 'layer2': 0.0, 'layer4': 0.0}),
                           (task.unfreeze_step, {'layer1': 0.0, 'layer2': 0.05, 'layer4': 0.05})):
        mults = jax.tree_util.tree_flatten_with_path(task._lr_multipliers(params, step))[0]
        seen = {}
        for key_path, m in mults:
            path = path_names(key_path)
            name = path[1].split('_')[0] if path[0] == 'backbone' else path[0]
            seen.setdefault(name, set()).add(round(float(m), 6))
        for layer, mult in backbone.items():
            assert seen[layer] == {mult}, (step, layer, seen[layer])
        for group in GROUPS[1:]:
            assert seen[group] == {1.0}, (step, group)


def test_tiny_adam_moves_every_group_by_the_scheduled_lr():
    """configs/siamattn.py:tiny trains with Adam (siam/attn_task.py make_optimizer): the first
    update of every leaf is -lr(0) x sign(g) whatever the gradient's scale, so the refinement
    heads (gradients ~1e-3 of the backbone's) move as much as the backbone; r50_l234 keeps
    torch SGD; an unknown optimizer name is an error."""
    import ml_collections
    from siam.attn_task import SiamAttnTask
    from siam.siamattn import variable_shapes
    from tracking.config import load_config
    from tracking.train.optim import MomentumState
    config = _tiny_config()
    assert config.train.optimizer == 'adam'
    task = SiamAttnTask(config)
    shapes = variable_shapes(config.model)['params']
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    scales = {g: (3.0 if g == 'backbone' else 1e-2) for g in GROUPS}
    grads = {g: jax.tree.map(lambda x, k=scales[g]: x - k, params[g]) for g in params}
    optimizer = task.make_optimizer(params)
    updates, _ = jax.jit(optimizer.update)(grads, optimizer.init(params), params)
    lr = float(task.learning_rate(0))
    assert lr == pytest.approx(2e-4)
    offset_leaves = 0
    for group in GROUPS:
        for key_path, u in jax.tree_util.tree_flatten_with_path(updates[group])[0]:
            # tiny's offset MLPs of the two deformable RoI pools do not move (offset_lr_mult 0:
            # under Adam they scrambled the pools' sample grids, docs/siamattn.md).
            offset = any(getattr(k, 'key', '').startswith('offset_fc') for k in key_path)
            offset_leaves += offset
            np.testing.assert_allclose(np.asarray(u), 0.0 if offset else lr, rtol=1e-3,
                                       err_msg=f'{group}{jax.tree_util.keystr(key_path)}')
    assert offset_leaves == 12        # 3 Dense layers x (kernel, bias) x (box pool, mask pool)
    free = SiamAttnTask(_tiny_config(**{'train.offset_lr_mult': 1.0}))
    assert {float(m) for m in jax.tree.leaves(free._lr_multipliers(params, 0))} == {1.0}
    r50 = SiamAttnTask(load_config(str(REPO / 'configs/siamattn.py:r50_l234')))
    state = r50.make_optimizer(shapes).init(params)
    assert any(isinstance(s, MomentumState) for s in state)
    bad = ml_collections.ConfigDict(config.to_dict())
    bad.train.optimizer = 'rmsprop'
    with pytest.raises(ValueError, match='rmsprop'):
        SiamAttnTask(bad).make_optimizer(params)


def _sharding_config():
    """tiny with a global batch of 4 (one image per device on 4 devices), SGD and no weight
    decay: see `stepper` and test_four_devices_match_one_device."""
    return _tiny_config(**{'train.batch_size': 4, 'data.samples_per_epoch': 4,
                           'train.optimizer': "'sgd'", 'train.weight_decay': 0.0})


def _stepper(config, variables=None):
    """`run(has_mask=(1, 0, 1, 1)) -> (variables before, variables after, metrics)`: one train
    step of the loop (`loop.make_train_step`, jitted once) of `config` on this process's
    devices, from the same initial state every call, on `_fake_batch(task, 4, has_mask)`; the
    variables flattened to {keystr: numpy array}. variables: the initial ones (default
    `task.init_variables(PRNGKey(0))`, the official inits: zero attention gains). With SGD and
    no weight decay the first step moves a parameter by -lr x its (clipped) gradient: exactly
    not at all where that is 0."""
    from siam.attn_task import SiamAttnTask
    from tracking.train import loop, sharding
    task = SiamAttnTask(config)
    mesh = sharding.make_mesh()
    if variables is None:
        variables = task.init_variables(jax.random.PRNGKey(0))
    optimizer = task.make_optimizer(variables['params'])
    step = loop.make_train_step(task, optimizer, mesh, phase=None)

    def run(has_mask=(1, 0, 1, 1)):
        state = loop.create_train_state(variables, optimizer, jax.random.PRNGKey(1), mesh)
        before = flat_variables(state)
        batch = sharding.shard_batch(_fake_batch(task, batch=4, has_mask=has_mask), mesh)
        state, metrics = step(state, batch)       # donates the state's buffers
        return before, flat_variables(state), jax.device_get(metrics)

    return run


@pytest.fixture(scope='module')
def stepper():
    """The single-device `_stepper` of `_sharding_config()`, shared by the tests below, so the
    SiamAttn train step compiles once in this process (and once in the 4-device subprocess)."""
    assert jax.device_count() == 1
    return _stepper(_sharding_config())


@pytest.fixture(scope='module')
def one_device_step(stepper):
    return stepper()


def _device_run(config_json: str, out: str, initial: str) -> None:
    """One train step on this process's devices from the variables saved in `initial` (flat
    keystr -> array, what `stepper` started from: the model's init is not compiled again);
    saves the variables after it to `out`."""
    import ml_collections

    from siam.siamattn import variable_shapes
    config = ml_collections.ConfigDict(json.loads(config_json))
    saved = np.load(initial)
    leaves, tree = jax.tree_util.tree_flatten_with_path(variable_shapes(config.model))
    variables = tree.unflatten([saved[jax.tree_util.keystr(path)] for path, _ in leaves])
    _, after, _ = _stepper(config, variables)()
    np.savez(out, **after)
    print(f'devices={jax.device_count()}', flush=True)


@pytest.mark.slow
def test_four_devices_match_one_device(tmp_path, one_device_step):
    """One SiamAttn train step on 4 virtual CPU devices (a subprocess) equals the
    single-device step (this process): global batch statistics, the same RoIs (the sampling
    key is per step, not per device).

    With SGD (the official optimizer): the parameters then move by lr x gradient, so this
    compares the two gradients. tiny's Adam moves a parameter by about +-lr whatever the size
    of its gradient on the first step (m / sqrt(v) = sign(g)), so a gradient that is zero up
    to float32 summation order (different on 4 devices) can move it by lr one way or the other:
    seen once, a layer1 kernel entry 4e-4 apart."""
    np.savez(tmp_path / 'initial.npz', **one_device_step[0])
    assert_four_devices_match(__file__, _sharding_config().to_json(), tmp_path / '4.npz',
                              one_device_step[1], timeout=1200,
                              extra_args=(str(tmp_path / 'initial.npz'),))


if __name__ == '__main__':
    _device_run(*sys.argv[1:4])
