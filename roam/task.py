"""ROAM meta-training task for tracking/train/loop.py (`train.py --config configs/roam.py:...`).

Trained parameters (the loop's 'params'): the meta-parameters
    {'theta0': theta pytree, 'lambda0': theta pytree (first-step rates), 'meta_opt': LSTM}.
Frozen (the loop's model_state, checkpointed with the state, never updated): {'vgg': VGG-16
params} -- `train.vgg_weights` (MatConvNet imagenet-vgg-verydeep-16.mat or a torchvision vgg16
state_dict .pth), or, when empty, a random extractor of the config's widths with conv1_1
scaled by train.random_vgg_gain (the tiny config; rejected for vgg16 unless
train.allow_random_vgg).

Objective: `roam.meta.batch_meta_loss` (the unrolled meta-loss, mean over the clips of the
batch). Optimizer (Estimator.train_roam): two Adam optimizers as one
optax.multi_transform over the two groups,
  'meta_init' (theta0, lambda0): element-wise clip to [-10, 10], Adam lr 1e-6;
  'meta_opt'  (LSTM + linear):   element-wise clip to [-1, 1],  Adam lr 1e-3;
both StepLR x lr_decay (0.5) every lr_decay_every_epochs (5) epochs, an epoch being
data.samples_per_epoch // batch_size steps. Adam: betas (0.9, 0.999), eps 1e-8 (torch and optax
defaults agree); the LSTM group's beta2 is train.meta_opt_b2 (tiny: 0.99).
"""
from __future__ import annotations

import logging
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from roam import meta as rmeta
from roam import model as rm

META_INIT, META_OPT = 'meta_init', 'meta_opt'


def step_schedule(base_lr: float, every_steps: int, factor: float):
    """StepLR in steps: base_lr * factor ** (step // every_steps)."""
    every_steps = max(1, int(every_steps))
    return lambda step: base_lr * factor ** (jnp.asarray(step) // every_steps)


def param_labels(params) -> dict:
    """Group of every meta-parameter leaf: theta0/lambda0 -> 'meta_init', LSTM -> 'meta_opt'."""
    return {k: jax.tree_util.tree_map(lambda _: META_OPT if k == 'meta_opt' else META_INIT, v)
            for k, v in params.items()}


def make_meta_optimizer(train_config, steps_per_epoch: int) -> optax.GradientTransformation:
    """The two clipped, step-decayed Adam optimizers over the meta-parameter groups."""
    t = train_config
    every = int(t.lr_decay_every_epochs) * int(steps_per_epoch)
    groups = {
        META_INIT: optax.chain(optax.clip(float(t.meta_init_grad_clip)),
                               optax.adam(step_schedule(float(t.meta_init_lr), every,
                                                        float(t.lr_decay)))),
        META_OPT: optax.chain(optax.clip(float(t.meta_opt_grad_clip)),
                              optax.adam(step_schedule(float(t.meta_opt_lr), every,
                                                       float(t.lr_decay)),
                                         b2=float(t.get('meta_opt_b2', 0.999)))),
    }
    tx = optax.multi_transform(groups, param_labels)
    if t.get('skip_nonfinite', False):
        tx = skip_nonfinite(tx)
    return tx


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner`, except that a step whose gradients' global norm is not finite (an entry inf or
    NaN, or entries so large that the float32 norm overflows: an inner loop that diverged on a
    clip) leaves the parameters and `inner`'s state as they are. Without it such a step reaches
    Adam clipped to +-clip, moves the parameters in the clip's sign pattern and inflates the
    second moment for ~1 / (1 - beta2) steps (tiny's train.skip_nonfinite; not official)."""
    def update(updates, state, params=None):
        ok = jnp.isfinite(optax.global_norm(updates))

        def if_ok(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)

        zeros = jax.tree_util.tree_map(jnp.zeros_like, updates)
        new_updates, new_state = inner.update(if_ok(updates, zeros), state, params)
        return if_ok(new_updates, zeros), if_ok(new_state, state)
    return optax.GradientTransformation(inner.init, update)


def load_vgg(config, seed: int = 0) -> dict:
    """The frozen extractor's parameters (see the module docstring)."""
    from roam import vgg as vgg_lib
    from roam.convert import vgg_from_matconvnet, vgg_from_torchvision

    path = config.train.get('vgg_weights', '')
    if path:
        if str(path).endswith('.mat'):
            return vgg_from_matconvnet(path, config)
        from tracking.torch_pickle import load_weights
        return vgg_from_torchvision(load_weights(path), config)
    if config.variant == 'vgg16' and not config.train.get('allow_random_vgg', False):
        raise ValueError('configs/roam.py:vgg16 needs config.train.vgg_weights (the MatConvNet '
                         'imagenet-vgg-verydeep-16.mat the official code loads, or a torchvision '
                         'vgg16 .pth); set train.allow_random_vgg=True to train on random '
                         'features')
    params = vgg_lib.init_params(seed, tuple(config.model.vgg_channels))
    # Zero biases and ReLUs make the extractor positively homogeneous: scaling conv1_1 scales
    # relu4_3 by the same factor (tiny: 1/64, features of about unit size from 0..255 input).
    gain = float(config.train.get('random_vgg_gain', 1.0))
    params['conv1_1']['kernel'] = params['conv1_1']['kernel'] * np.float32(gain)
    logging.info('roam: random frozen VGG of widths %s, gain %g',
                 tuple(config.model.vgg_channels), gain)
    return params


class ROAMTask:
    """The meta-training task of ROAM (docs/architecture.md, "A training task")."""

    def __init__(self, config):
        self.config = config
        t = config.train
        self.steps_per_epoch = max(1, int(config.data.samples_per_epoch) // int(t.batch_size))
        self.lopt = rmeta.make_lopt(config)
        self._init_lr = step_schedule(float(t.meta_init_lr),
                                      int(t.lr_decay_every_epochs) * self.steps_per_epoch,
                                      float(t.lr_decay))

    def init_variables(self, rng) -> dict:
        """params: theta0 (official MetaCFNet init), lambda0 (meta_lr_init everywhere), the
        LSTM (PyTorch init, linear bias lstm_bias_init); model_state: {'vgg'} (frozen)."""
        m = self.config.model
        k_theta, k_lstm = jax.random.split(rng)
        params = {'theta0': rm.init_theta(k_theta, self.config, float(m.theta_init_scale)),
                  'lambda0': rm.init_rates(self.config, float(m.meta_lr_init)),
                  'meta_opt': self.lopt.init(k_lstm)}
        return {'params': params, 'vgg': load_vgg(self.config, int(self.config.seed))}

    def learning_rate(self, step):
        """The meta-init (theta0, lambda0) learning rate at `step` (the LSTM's is x1000)."""
        return self._init_lr(step)

    def make_optimizer(self, params) -> optax.GradientTransformation:
        del params
        return make_meta_optimizer(self.config.train, self.steps_per_epoch)

    def loss_fn(self, params, model_state, batch, rng):
        """Mean unrolled meta-loss of the batch's clips (keys are explicit in the batch:
        deltas and scale_key; `rng` is unused). Returns (loss, (model_state, metrics))."""
        del rng
        loss, aux = rmeta.batch_meta_loss(params, model_state['vgg'], batch, self.config,
                                          self.lopt)
        rates = jax.tree_util.tree_leaves(aux['rates'])
        metrics = dict(map_loss=jnp.mean(aux['map_loss']), bbox_loss=jnp.mean(aux['bbox_loss']),
                       update_loss=jnp.mean(aux['update_loss']),
                       first_update_loss=jnp.mean(aux['losses'][:, 0, 0] + aux['losses'][:, 0, 1]),
                       first_look_ahead_loss=jnp.mean(aux['losses'][:, 0, 2]
                                                      + aux['losses'][:, 0, 3]),
                       mean_rate=sum(jnp.sum(r) for r in rates) / sum(r.size for r in rates))
        return loss, (model_state, metrics)

    def train_batches(self, start_step: int, process_index: int, process_count: int) -> Iterator:
        from roam.clips import train_batches
        from tracking.data.datasets import load_training_sequences

        data = self.config.data
        tables = [load_training_sequences(name, data) for name in data.datasets]
        return train_batches(tables, tuple(data.ratios), self.config, int(self.config.seed),
                             start_step, process_index, process_count)
