"""SiamRPN++ training task for tracking/train/loop.py (pysot's recipe, docs/siamrpn.md).

- Phases: before `backbone_train_epoch` the backbone is frozen (no gradient, BatchNorm on
  running statistics); from it on the layers in `backbone_train_layers` train (their
  BatchNorms on batch statistics) with lr x `backbone_lr_mult`, and the momentum buffers are
  zeroed once, as pysot rebuilds its optimizer there. The neck and head train throughout with
  batch-statistics BatchNorm.
- Learning rate: one value per epoch, a 'step' warm-up then a log-space (`lr_spaces`), times
  base_lr / log_start_lr for the neck/head.
- Optimizer: gradients x loss_scale (pysot sums gradients over its GPUs), clipped to a global
  norm (torch formula), + weight_decay * param, torch SGD momentum.
"""
from __future__ import annotations

import logging
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from siam.layers import layer_of
from tracking.train.optim import clip_by_global_norm_torch, torch_sgd
from tracking.trees import path_names


def lr_spaces(train_config) -> np.ndarray:
    """[num_epochs] float64 learning rate per epoch (pysot WarmUPScheduler(step, log)).

    Warm-up: start * m**e for e < warmup_epochs, m = (end / start) ** (1 / warmup_epochs);
    then logspace(log_start, log_end, num_epochs - warmup_epochs).
    """
    t = train_config
    epochs, warmup = int(t.num_epochs), int(t.warmup_epochs)
    if not 0 <= warmup <= epochs:
        raise ValueError(f'config.train.warmup_epochs={warmup} must be in [0, num_epochs='
                         f'{epochs}]')
    start, end = float(t.warmup_start_lr), float(t.warmup_end_lr)
    mult = (end / start) ** (1.0 / warmup) if warmup else 1.0
    head = start * mult ** np.arange(warmup)
    tail = np.logspace(np.log10(float(t.log_start_lr)), np.log10(float(t.log_end_lr)),
                       epochs - warmup)
    return np.concatenate([head, tail])


class SiamRPNTask:
    """The training task of SiamRPN++ (see docs/architecture.md, "A training task")."""

    def __init__(self, config):
        from siam.model import build_model

        self.config = config
        self.model = build_model(config.model)
        t = config.train
        self.anchor_num = int(config.model.rpn.anchor_num)
        self.steps_per_epoch = max(1, int(config.data.samples_per_epoch) // int(t.batch_size))
        self.lr_per_epoch = lr_spaces(t)
        self.train_layers = tuple(t.backbone_train_layers)
        self.unfreeze_step = int(t.backbone_train_epoch) * self.steps_per_epoch
        # Phase 0 (backbone frozen) ends at unfreeze_step; none when it trains from the start.
        self.phase_starts = (self.unfreeze_step,) if self.unfreeze_step > 0 else ()

    # -- variables ---------------------------------------------------------------------------

    def init_variables(self, rng) -> dict:
        """Random init ({'params', 'batch_stats'}), then the pysot ImageNet backbone if
        config.train.pretrained is a file."""
        from siam.model import init_variables

        variables = init_variables(self.config.model, rng)
        path = self.config.train.pretrained
        if path:
            variables = load_pretrained_backbone(variables, path, self.config)
        return variables

    # -- phases and groups -------------------------------------------------------------------

    def backbone_trains(self, phase: int) -> bool:
        """Whether the backbone's train layers are trained in loop phase `phase`."""
        return self.unfreeze_step == 0 or phase >= 1

    def is_backbone_trainable(self, path: tuple[str, ...]) -> bool:
        """Whether a backbone parameter (path in the params tree) is in a trained layer."""
        return len(path) > 1 and layer_of(path[1]) in self.train_layers

    def _lr_multipliers(self, params, step):
        """Per-leaf learning-rate multiplier at `step`: 1 for neck/head, backbone_lr_mult for
        a trained backbone layer once unfrozen, 0 otherwise."""
        unfrozen = jnp.asarray(step) >= self.unfreeze_step
        mult = float(self.config.train.backbone_lr_mult)

        def leaf(key_path, _):
            path = path_names(key_path)
            if path[0] != 'backbone':
                return jnp.float32(1.0)
            if not self.is_backbone_trainable(path):
                return jnp.float32(0.0)
            return jnp.where(unfrozen, mult, 0.0).astype(jnp.float32)

        return jax.tree_util.tree_map_with_path(leaf, params)

    # -- optimizer ---------------------------------------------------------------------------

    def learning_rate(self, step):
        """Neck/head learning rate at `step` (constant within an epoch, the last epoch's value
        beyond num_epochs)."""
        t = self.config.train
        table = jnp.asarray(self.lr_per_epoch * float(t.base_lr) / float(t.log_start_lr),
                            jnp.float32)
        epoch = jnp.minimum(jnp.asarray(step) // self.steps_per_epoch, len(self.lr_per_epoch) - 1)
        return table[epoch]

    def make_optimizer(self, params) -> optax.GradientTransformation:
        t = self.config.train

        def per_leaf_lr(step):
            lr = self.learning_rate(step)
            return jax.tree.map(lambda m: lr * m, self._lr_multipliers(params, step))

        return optax.chain(
            optax.scale(float(t.loss_scale)),
            clip_by_global_norm_torch(float(t.grad_clip_norm)),
            optax.add_decayed_weights(float(t.weight_decay)),
            torch_sgd(per_leaf_lr, float(t.momentum), reset_steps=self.phase_starts))

    # -- loss --------------------------------------------------------------------------------

    def _stop_frozen_gradients(self, params, phase: int):
        trains = self.backbone_trains(phase)

        def leaf(key_path, value):
            path = path_names(key_path)
            if path[0] == 'backbone' and not (trains and self.is_backbone_trainable(path)):
                return jax.lax.stop_gradient(value)
            return value

        return jax.tree_util.tree_map_with_path(leaf, params)

    def loss_fn(self, params, model_state, batch, rng, phase: int = 0):
        """pysot's SiamRPN objective on a batch.

        batch: template [B, 127, 127, 3] and search [B, 255, 255, 3] float32 raw BGR, label
        [B, A, S, S] int32, delta [B, 4, A, S, S], delta_weight [B, A, S, S] float32.
        Returns (loss, (new_model_state, metrics)); loss is the global-batch objective
        (loss_scale is applied to the gradients by the optimizer).
        """
        from siam.losses import siamrpn_loss

        del rng  # the forward pass is deterministic
        t = self.config.train
        params = self._stop_frozen_gradients(params, phase)
        layers = self.train_layers if self.backbone_trains(phase) else ()
        outputs, new_state = self.model.apply(
            {'params': params, **model_state}, batch['template'], batch['search'], layers,
            method='train_forward', mutable=['batch_stats'])
        loss, metrics = siamrpn_loss(outputs['cls'], outputs['loc'], batch['label'],
                                     batch['delta'], batch['delta_weight'], self.anchor_num,
                                     float(t.cls_weight), float(t.loc_weight))
        metrics = dict(metrics)
        metrics['positives'] = jnp.sum(batch['label'] == 1) / batch['label'].shape[0]
        return loss, ({**model_state, **new_state}, metrics)

    # -- data --------------------------------------------------------------------------------

    def anchor_target(self):
        """The AnchorTarget of the configured training geometry."""
        from siam.targets import AnchorTarget, TargetParams

        m, d = self.config.model, self.config.data
        return AnchorTarget(TargetParams.from_config(d.targets), int(d.output_size),
                            int(m.search_size), int(m.anchor.stride), tuple(m.anchor.ratios),
                            tuple(m.anchor.scales))

    def sample_spec(self) -> dict:
        """Shapes and dtypes of one training sample."""
        from tracking.data.pipeline import ArraySpec

        m = self.config.model
        z, x, s, a = int(m.template_size), int(m.search_size), int(self.config.data.output_size), \
            self.anchor_num
        return dict(template=ArraySpec((z, z, 3), np.float32),
                    search=ArraySpec((x, x, 3), np.float32),
                    label=ArraySpec((a, s, s), np.int32),
                    delta=ArraySpec((4, a, s, s), np.float32),
                    delta_weight=ArraySpec((a, s, s), np.float32),
                    search_box=ArraySpec((4,), np.float32),
                    negative=ArraySpec((), np.int32), index=ArraySpec((), np.int64))

    def sampler(self, sequences_per_dataset):
        from tracking.data.pysot_pairs import PysotPairSampler

        d, m = self.config.data, self.config.model
        return PysotPairSampler(sequences_per_dataset, tuple(d.ratios), tuple(d.frame_ranges), d,
                                int(m.template_size), int(m.search_size), int(self.config.seed),
                                targets=self.anchor_target())

    def train_batches(self, start_step: int, process_index: int, process_count: int) -> Iterator:
        from tracking.data.datasets import load_training_sequences
        from tracking.data.pipeline import sample_batches

        d = self.config.data
        sequences = [load_training_sequences(name, d) for name in d.datasets]
        return sample_batches(self.sampler(sequences).sample, self.sample_spec(),
                              int(self.config.train.batch_size), start_step, process_index,
                              process_count, int(d.num_parallel_calls), int(d.prefetch))


def load_pretrained_backbone(variables: dict, path: str, config) -> dict:
    """`variables` with the backbone replaced by a pysot ImageNet file (e.g. resnet50.model).

    The file holds backbone keys without the 'backbone.' prefix (a 'module.' prefix and extra
    keys such as the classifier's `fc.*` are ignored, as pysot's load_pretrain does); every
    backbone variable of the model must be in it.
    """
    from siam import convert
    from tracking.torch_pickle import load_weights

    try:
        weights = load_weights(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'config.train.pretrained: no file at {path}') from None
    state_dict = convert.to_official(jax.tree.map(np.asarray, variables))
    backbone_keys = [k for k in state_dict if k.startswith('backbone.')]
    missing = [k for k in backbone_keys if k[len('backbone.'):] not in weights]
    if missing:
        raise ValueError(f'{path}: {len(missing)} backbone weights missing, e.g. '
                         f'{[k[len("backbone."):] for k in missing[:5]]}')
    for key in backbone_keys:
        state_dict[key] = weights[key[len('backbone.'):]]
    logging.info('backbone initialised from %s (%d tensors)', path, len(backbone_keys))
    return convert.from_official(state_dict, config)
