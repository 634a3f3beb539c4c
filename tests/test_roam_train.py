"""ROAM meta-training on the core loop (roam/task.py, roam/clips.py): the two clipped Adam
optimizers and their step schedule, the clip sampler's geometry and determinism, and
`train()` of the tiny config on synthetic sequences with a checkpoint and a resume."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.roam import get_config
from roam import clips as rclips
from roam import model as rm
from roam.task import ROAMTask, make_meta_optimizer, param_labels
from tracking.data.sequence import Sequence


def _params():
    return {'theta0': {'a': jnp.zeros(3)}, 'lambda0': {'a': jnp.zeros(3)},
            'meta_opt': {'w': jnp.zeros(2)}}


def test_meta_optimizer_groups_clip_and_step_schedule():
    """Adam's first step moves every coordinate by ~lr whatever the gradient's size, so the
    moves show each group's lr; element-wise clipping shows in the second moment: after a step
    with a gradient of 1e3 then one of 1, the clipped run (1e3 -> 10 or 1) differs from an
    unclipped Adam; lr halves after lr_decay_every_epochs * steps_per_epoch steps."""
    t = get_config('vgg16').train
    opt = make_meta_optimizer(t, steps_per_epoch=2)          # decay every 5 * 2 = 10 steps
    assert param_labels(_params()) == {'theta0': {'a': 'meta_init'},
                                       'lambda0': {'a': 'meta_init'},
                                       'meta_opt': {'w': 'meta_opt'}}
    params = _params()
    state = opt.init(params)
    g = {'theta0': {'a': jnp.asarray([1e3, -2.0, 0.5])}, 'lambda0': {'a': jnp.ones(3)},
         'meta_opt': {'w': jnp.asarray([50.0, -0.01])}}
    up, state = opt.update(g, state, params)
    np.testing.assert_allclose(np.abs(up['theta0']['a']), 1e-6, rtol=1e-4)
    np.testing.assert_allclose(np.abs(up['meta_opt']['w']), 1e-3, rtol=1e-3)
    ones = jax.tree_util.tree_map(jnp.ones_like, g)
    up2, _ = opt.update(ones, state, params)
    # clipped: first gradient 10 (meta_init) / 1 (meta_opt); by hand with Adam's formulas
    def adam2(g1, g2, lr):
        m = 0.1 * g1 * 0.9 + 0.1 * g2
        v = 0.001 * g1 ** 2 * 0.999 + 0.001 * g2 ** 2
        return -lr * (m / (1 - 0.9 ** 2)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(up2['theta0']['a'][0], adam2(10.0, 1.0, 1e-6), rtol=1e-4)
    np.testing.assert_allclose(up2['meta_opt']['w'][0], adam2(1.0, 1.0, 1e-3), rtol=1e-4)
    # schedule: step 10 runs at half the lr
    state = opt.init(params)
    for _ in range(10):
        _, state = opt.update(ones, state, params)
    up, _ = opt.update(ones, state, params)
    np.testing.assert_allclose(np.abs(up['theta0']['a']), 0.5e-6, rtol=1e-4)
    np.testing.assert_allclose(np.abs(up['meta_opt']['w']), 0.5e-3, rtol=1e-4)


def _sequences(n=3, frames=36):
    from tracking.data.synthetic import generate_sequence
    out = []
    for s in range(n):
        g = generate_sequence(100 + s, frames)
        out.append(Sequence(f'syn{s}', g['frames'], g['boxes'], g['visible']))
    return out


def test_training_example_geometry():
    """A centred, unshifted sample of a 16x16 box: the box on the patch is (o, round(wh s)),
    the label peaks at floor(M/2) + o // 4, and the crop holds the target at the centre."""
    config = get_config('tiny')
    image = np.zeros((100, 120, 3), np.uint8)
    image[40:56, 50:66] = 255                              # box (50, 40, 16, 16)
    crop, label, box = rclips.training_example(image, (50, 40, 16, 16), 5.0, (0, 0), config)
    # window = int(5 * 16) = 80 -> 81 (odd) = crop_size: scale 1
    assert crop.shape == (81, 81, 3)
    np.testing.assert_array_equal(box, [0, 0, 16, 16])
    assert np.unravel_index(np.argmax(label), label.shape) == (10, 10)
    assert crop[40, 40].min() == 255 and crop[20, 20].max() == 0
    np.testing.assert_allclose(label, np.asarray(rm.box_label(jnp.asarray(box), config)),
                               atol=1e-6)
    crop2, label2, box2 = rclips.training_example(image, (50, 40, 16, 16), 5.0, (-9, 6), config)
    np.testing.assert_array_equal(box2, [-9, 6, 16, 16])
    assert np.unravel_index(np.argmax(label2), label2.shape) == (10 + 1, 10 - 3)
    # the target moved by the offset on the patch
    np.testing.assert_array_equal(crop2[40 + 6, 40 - 9], crop[40, 40])


def test_clip_sampler_is_pure_in_seed_and_index():
    config = get_config('tiny')
    sampler = rclips.ClipSampler([_sequences(2)], (1.0,), config, seed=3)
    a, b, c = sampler.sample(7), sampler.sample(7), sampler.sample(8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a['crops'], c['crops'])
    spec = rclips.clip_spec(config)
    assert spec['crops'].shape == (39, 81, 81, 3)
    for k, s in spec.items():
        assert a[k].shape == s.shape and a[k].dtype == s.dtype, k
    assert a['deltas'].min() >= 0 and a['deltas'].max() < config.train.look_ahead
    # the first 9 samples: aspects (1, .8, 1.2) x scales (1, .8, 1.2), same frame
    w, h = a['boxes'][:9, 2], a['boxes'][:9, 3]
    assert np.all(w[3:6] / h[3:6] < w[:3] / h[:3])      # ratio 0.8 narrows the box
    with pytest.raises(ValueError, match='visible frames'):
        rclips.ClipSampler([_sequences(1, frames=20)], (1.0,), config, seed=0)


def test_colour_augment_is_one_channel_transform_per_clip():
    """tiny's colour augmentation: the same clip as without it (labels, boxes, deltas, RFS key)
    with every crop under one and the same channel permutation / inversion."""
    import itertools
    config = get_config('tiny')
    assert config.train.colour_augment and not get_config('vgg16').train.colour_augment
    seqs = [_sequences(2)]
    aug = rclips.ClipSampler(seqs, (1.0,), config, seed=3)
    config = get_config('tiny')                # the sampler keeps its config object
    config.train.colour_augment = False
    plain = rclips.ClipSampler(seqs, (1.0,), config, seed=3)
    seen = set()
    for index in range(6):
        a, p = aug.sample(index), plain.sample(index)
        for k in ('labels', 'boxes', 'deltas', 'scale_key'):
            np.testing.assert_array_equal(a[k], p[k])
        x = p['crops'].astype(np.int16)
        found = [(perm, inv) for perm in itertools.permutations(range(3))
                 for inv in itertools.product((0, 1), repeat=3)
                 if np.array_equal(a['crops'], np.where(np.asarray(inv, bool), 255 - x[..., perm],
                                                        x[..., perm]))]
        assert found, index
        seen.add(found[0])
    assert len(seen) > 1                      # clips draw different transforms


def test_skip_nonfinite_leaves_params_and_state():
    """train.skip_nonfinite: a meta-gradient whose float32 norm overflows (entries 1e30, finite)
    gives a zero update and the same optimizer state; a finite step is the plain optimizer's."""
    from roam.task import skip_nonfinite
    t = get_config('tiny').train
    assert t.skip_nonfinite
    opt = make_meta_optimizer(t, steps_per_epoch=100)
    plain = make_meta_optimizer(get_config('vgg16').train, steps_per_epoch=100)
    params = _params()
    state = opt.init(params)
    bad = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 1e30), params)
    up, state2 = opt.update(bad, state, params)
    assert all(float(jnp.max(jnp.abs(u))) == 0 for u in jax.tree_util.tree_leaves(up))
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(state2)):
        np.testing.assert_array_equal(a, b)
    g = jax.tree_util.tree_map(lambda x: jnp.linspace(-1.0, 2.0, x.size), params)
    ref, _ = skip_nonfinite(plain).update(g, skip_nonfinite(plain).init(params), params)
    raw, _ = plain.update(g, plain.init(params), params)
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(raw)):
        np.testing.assert_array_equal(a, b)
    ok, _ = opt.update(g, state2, params)
    assert all(float(jnp.max(jnp.abs(u))) > 0 for u in jax.tree_util.tree_leaves(ok))


class _SyntheticROAM(ROAMTask):
    """The tiny task on in-memory synthetic sequences (no TFDS build in a unit test)."""

    def train_batches(self, start_step, process_index, process_count):
        return rclips.train_batches([_sequences(2)], (1.0,), self.config, self.config.seed,
                                    start_step, process_index, process_count)


def _small_tiny():
    config = get_config('tiny')
    config.train.batch_size = 1
    config.train.num_steps = 2
    config.train.checkpoint_every_steps = 1
    config.train.log_every_steps = 1
    config.train.tensorboard = True
    config.data.num_parallel_calls = 1
    return config


def test_train_tiny_checkpoint_resume_tensorboard(tmp_path):
    """train() meta-trains tiny for 2 steps (finite metrics, checkpoints, TensorBoard events),
    then a second call with num_steps 3 resumes from step 2 and does one more; the meta-
    parameters moved and the VGG (model_state) did not."""
    from tracking.train.loop import train
    config = _small_tiny()
    seen = []
    state = train(config, str(tmp_path), _SyntheticROAM(config),
                  on_step_metrics=lambda s, m: seen.append((s, m)))
    assert int(state.step) == 2 and [s for s, _ in seen] == [0, 1]
    for name in ('loss', 'map_loss', 'bbox_loss', 'update_loss', 'mean_rate', 'grad_norm'):
        assert np.isfinite(seen[-1][1][name]), name
    assert os.listdir(tmp_path / 'tensorboard')
    task = _SyntheticROAM(config)
    init = task.init_variables(jax.random.split(jax.random.PRNGKey(config.seed))[0])
    assert not np.allclose(np.asarray(state.params['theta0']['cf']['filter']['kernel']),
                           np.asarray(init['params']['theta0']['cf']['filter']['kernel']))
    np.testing.assert_array_equal(np.asarray(state.model_state['vgg']['conv1_1']['kernel']),
                                  init['vgg']['conv1_1']['kernel'])
    config.train.num_steps = 3
    seen.clear()
    state = train(config, str(tmp_path), _SyntheticROAM(config),
                  on_step_metrics=lambda s, m: seen.append((s, m)))
    assert int(state.step) == 3 and [s for s, _ in seen] == [2]


def test_make_task_finds_roam():
    from tracking.train.tasks import make_task
    assert type(make_task(get_config('tiny'))).__name__ == 'ROAMTask'


def test_vgg16_without_weights_is_an_error():
    task = ROAMTask(get_config('vgg16'))
    with pytest.raises(ValueError, match='vgg_weights'):
        task.init_variables(jax.random.PRNGKey(0))


def test_a_training_workdirs_variables_fit_the_tracker():
    """eval.py / track.py take a meta-training workdir: its {'params': {theta0, lambda0,
    meta_opt}, 'vgg', 'batch_stats': {}} is put in the tracker's layout by the package's
    tracker_variables (tracking.plugins) and then passes the checkpoint check; another model's
    checkpoint is left as it is, so the check names what does not fit."""
    from pathlib import Path

    from tracking import plugins
    from tracking.checkpoint import check_variables_match
    from tracking.config import load_config
    config = load_config(str(Path(__file__).resolve().parents[1] / 'configs/roam.py:tiny'))
    expected = plugins.abstract_variables(config)
    zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), expected)
    restored = {'batch_stats': {}, 'vgg': zeros['vgg'],
                'params': {k: zeros[k] for k in ('theta0', 'lambda0', 'meta_opt')}}
    check_variables_match(plugins.tracker_variables(config, restored), expected, 'W', 'roam:tiny')
    other = {'batch_stats': {}, 'params': {'backbone': {'kernel': np.zeros((3, 3))}}}
    assert plugins.tracker_variables(config, other) is other
    with pytest.raises(ValueError, match='does not fit config roam:tiny'):
        check_variables_match(other, expected, 'W', 'roam:tiny')
