"""GRM training task for tracking/train/loop.py: init, optimizer groups, loss, input stream.

Optimizer (official GRM, docs/grm.md section 5): AdamW with weight decay on every parameter and
three learning-rate groups,
  1. everything outside the backbone (the box head): lr;
  2. backbone parameters whose path has no 'divide': lr * backbone_lr_mult (includes pos_embed_*);
  3. backbone parameters whose path contains 'divide' (the division MLPs): lr.
The lr follows StepLR: x lr_drop_factor every lr_drop_epoch epochs, one epoch being
samples_per_epoch // batch_size steps. Gradients are clipped like torch.nn.utils.clip_grad_norm_
(coefficient max_norm / (norm + 1e-6), at most 1, over all parameters) before the optimizer.
"""
from __future__ import annotations

import logging
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tracking.crops import normalize_imagenet
from tracking.train.optim import clip_by_global_norm_torch
from tracking.trees import path_names

HEAD, BACKBONE, DIVISION = 'head', 'backbone', 'division'


def param_group(path: tuple[str, ...]) -> str:
    """Optimizer group of a parameter from its path in the params tree."""
    if not path or path[0] != 'backbone':
        return HEAD
    return DIVISION if any('divide' in part for part in path) else BACKBONE


def param_groups(params) -> dict:
    """Same tree as params with each leaf replaced by its group name."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: param_group(path_names(path)), params)


def step_lr_schedule(base_lr: float, drop_every_steps: int, factor: float):
    """StepLR in steps: base_lr * factor ** (step // drop_every_steps)."""
    drop_every_steps = max(1, int(drop_every_steps))

    def schedule(step):
        return base_lr * factor ** (jnp.asarray(step) // drop_every_steps)

    return schedule


class GRMTask:
    """The training task of GRM (see docs/architecture.md, "A training task")."""

    def __init__(self, config):
        from grm_jax import model as model_lib

        self.config = config
        self.model = model_lib.build_model(config)
        train = config.train
        self.steps_per_epoch = max(1, int(config.data.samples_per_epoch) // int(train.batch_size))
        self.lr_schedule = step_lr_schedule(float(train.lr),
                                            int(train.lr_drop_epoch) * self.steps_per_epoch,
                                            float(train.lr_drop_factor))

    # -- variables ---------------------------------------------------------------------------

    def init_variables(self, rng) -> dict:
        """Random init ({'params', 'batch_stats'}), then MAE weights if config.train.pretrained."""
        from grm_jax import model as model_lib

        variables = model_lib.init_variables(self.config, rng)
        path = self.config.train.pretrained
        if path:
            variables = load_pretrained(variables, path, self.config)
        return variables

    # -- optimizer ---------------------------------------------------------------------------

    def learning_rate(self, step):
        """Head learning rate at `step` (the division MLPs share it; backbone x multiplier)."""
        return self.lr_schedule(step)

    def make_optimizer(self, params) -> optax.GradientTransformation:
        train = self.config.train
        mult = float(train.backbone_lr_mult)
        backbone_schedule = lambda step: self.lr_schedule(step) * mult  # noqa: E731

        def adamw(schedule):
            return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8,
                               weight_decay=float(train.weight_decay))

        groups = {HEAD: adamw(self.lr_schedule), BACKBONE: adamw(backbone_schedule),
                  DIVISION: adamw(self.lr_schedule)}
        return optax.chain(clip_by_global_norm_torch(float(train.grad_clip_norm)),
                           optax.multi_transform(groups, param_groups))

    # -- loss --------------------------------------------------------------------------------

    def loss_fn(self, params, model_state, batch, rng):
        """GRM objective on a batch of uint8 crops.

        batch: template [B, Ht, Wt, 3] uint8, search [B, Hs, Ws, 3] uint8, search_box [B, 4]
        normalised xywh, heatmap [B, F, F]. rng: key for Gumbel decisions and drop path.
        Returns (loss, (new_model_state, metrics)).
        """
        from grm_jax.losses import grm_loss

        gumbel_rng, dropout_rng = jax.random.split(rng)
        train = self.config.train
        outputs, new_state = self.model.apply(
            {'params': params, **model_state},
            normalize_imagenet(batch['template']), normalize_imagenet(batch['search']),
            threshold=0.0, train=True, rngs={'gumbel': gumbel_rng, 'dropout': dropout_rng},
            mutable=['batch_stats'])
        loss, metrics = grm_loss(outputs['pred_boxes'], outputs['score_map'],
                                 batch['search_box'], batch['heatmap'],
                                 giou_weight=float(train.giou_weight),
                                 l1_weight=float(train.l1_weight),
                                 focal_weight=float(train.focal_weight))
        metrics = dict(metrics)
        metrics['division_fraction'] = jnp.mean(outputs['decision_fraction'])
        return loss, ({**model_state, **new_state}, metrics)

    # -- data --------------------------------------------------------------------------------

    def train_batches(self, start_step: int, process_index: int, process_count: int) -> Iterator:
        from tracking.data import pairs
        from tracking.data.datasets import load_training_sequences

        data = self.config.data
        sequences = [load_training_sequences(name, data) for name in data.datasets]
        return pairs.train_batches(sequences, tuple(data.ratios), data, self.config.model,
                                   int(self.config.train.batch_size), int(self.config.seed),
                                   start_step, process_index, process_count)


def load_pretrained(variables: dict, path: str, config) -> dict:
    """MAE weights from a .pth file (its 'model' entry, read without torch) into `variables`."""
    from grm_jax import mae
    from tracking.torch_pickle import load_weights

    try:
        state_dict = load_weights(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'config.train.pretrained: no file at {path}') from None
    variables = jax.tree.map(np.asarray, variables)
    logging.info('initialising the ViT from the MAE checkpoint %s', path)
    return mae.load_mae_into(variables, state_dict, config)

