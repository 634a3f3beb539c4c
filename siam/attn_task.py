"""SiamAttn training task for tracking/train/loop.py (docs/siamattn.md, "Training").

Built on `siam.task.SiamRPNTask` (phases, backbone freezing, lr schedule, torch SGD, anchor
targets, pysot pairs); what SiamAttn adds:
- the model is `siam.siamattn.SiamAttn`, trained through `SiamAttn.train_forward`;
- objective = cls_weight * RPN select-CE + loc_weight * RPN weighted L1
  + box_weight * smooth-L1 of the refined box deltas + mask_weight * mask BCE (OHEM fraction
  mask_ohem), the last two on positive pairs only, the mask term only where the search frame
  has a ground-truth mask (batch['has_mask']);
- RoIs: per search image `rois` boxes sampled among the detached RPN proposals (decoded on the
  anchor grid, clipped to the crop) and the target box with IoU >= roi_fg_thresh
  (`siam.targets.sample_rois`); the box head sees all of them, the mask head the first
  `mask_rois` (a random subset: the sample order is random), or, with mask_roi_fg_thresh > 0
  (tiny), `mask_rois` boxes drawn on their own among the candidates with IoU >= it;
- every parameter outside the backbone trains from step 0 (DSA, RPN, fusion, box and mask heads:
  unlike the official release, whose optimizer omits the attention, fusion and box head);
- samples carry `search_mask` [255, 255] uint8 and `has_mask` (`PysotPairSampler(masks=True)`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from siam.task import SiamRPNTask, load_pretrained_backbone


class SiamAttnTask(SiamRPNTask):
    """The training task of SiamAttn (see the module docstring)."""

    def __init__(self, config):
        from siam.siamattn import build_model, is_siamattn

        if not is_siamattn(config.model):
            raise ValueError("SiamAttnTask: config.model.arch must be 'siamattn' "
                             '(configs/siamattn.py)')
        super().__init__(config)
        self.model = build_model(config.model)
        t = config.train
        self.num_rois = int(t.rois)
        self.num_mask_rois = int(t.mask_rois)
        if not 1 <= self.num_mask_rois <= self.num_rois:
            raise ValueError(f'config.train.mask_rois={self.num_mask_rois} must be in '
                             f'[1, train.rois={self.num_rois}]')
        self.centres = self.anchor_target().centres         # [4, A, S, S] in crop pixels

    def init_variables(self, rng) -> dict:
        """Random init (official zero inits of the gains, DCN offsets, offset MLPs), then the
        pysot ImageNet backbone if config.train.pretrained is a file."""
        from siam.siamattn import init_variables

        variables = init_variables(self.config.model, rng)
        path = self.config.train.pretrained
        if path:
            variables = load_pretrained_backbone(variables, path, self.config)
        return variables

    def make_optimizer(self, params):
        """SiamRPN++'s torch SGD (config.train.optimizer 'sgd', the recipe), or Adam
        ('adam', configs/siamattn.py:tiny): per-leaf learning rate `learning_rate(step)` x the
        backbone multipliers, after the same loss scale, torch gradient clip and (coupled) weight
        decay. Adam is for the short CPU schedule of tiny, where SGD moves the refinement heads
        (whose last layers start at std 0.001 / 0.25) ~100x less than the backbone per step
        (docs/siamattn.md, "Training tiny")."""
        import optax

        from tracking.train.optim import clip_by_global_norm_torch

        t = self.config.train
        name = str(t.get('optimizer', 'sgd'))
        if name == 'sgd':
            return super().make_optimizer(params)
        if name != 'adam':
            raise ValueError(f"config.train.optimizer={name!r}: expected 'sgd' or 'adam'")

        def scale_by_lr():
            def update(updates, state, params=None):
                del params
                lr = self.learning_rate(state.count)
                mult = self._lr_multipliers(updates, state.count)
                return (jax.tree.map(lambda u, m: -lr * m * u, updates, mult),
                        optax.ScaleByScheduleState(count=optax.safe_int32_increment(state.count)))

            return optax.GradientTransformation(
                lambda _: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)), update)

        return optax.chain(
            optax.scale(float(t.loss_scale)),
            clip_by_global_norm_torch(float(t.grad_clip_norm)),
            optax.add_decayed_weights(float(t.weight_decay)),
            optax.scale_by_adam(),
            scale_by_lr())

    def _lr_multipliers(self, params, step):
        """SiamRPNTask's multipliers, times `train.offset_lr_mult` (default 1) on the offset
        MLPs of the two deformable RoI pools (`offset_fc_*` of roi_pool_b / roi_pool_m). tiny
        sets 0: under Adam every leaf moves by ~lr per step, and in 200 steps the pools'
        offsets grew to 10-24% of the RoI on average (max 86%; a mask bin is 12.5%), i.e. the
        pools sampled the wrong cells (docs/siamattn.md, "Training tiny")."""
        from tracking.trees import path_names

        mults = super()._lr_multipliers(params, step)
        offset = float(self.config.train.get('offset_lr_mult', 1.0))
        if offset == 1.0:
            return mults

        def leaf(key_path, m):
            if any(name.startswith('offset_fc') for name in path_names(key_path)):
                return m * offset
            return m

        return jax.tree_util.tree_map_with_path(leaf, mults)

    def select_rois(self, rng, search_box):
        """`select_rois(cls, loc)` for SiamAttn.train_forward: samples the RoIs of every search
        image from the RPN output. search_box [B, 4] target corners in the crop."""
        from siam.targets import decode_proposals, roi_rows, sample_rois

        t = self.config.train

        def select(cls, loc):
            del cls
            proposals = decode_proposals(loc, self.centres, self.anchor_num)
            sampled = sample_rois(rng, proposals, search_box, self.num_rois,
                                  float(t.roi_fg_thresh), int(self.config.model.search_size))
            boxes = sampled['boxes']
            mask_boxes = boxes[:, :self.num_mask_rois]
            mask_thresh = float(t.get('mask_roi_fg_thresh', 0.0))
            if mask_thresh > 0:     # tiny: the mask RoIs drawn on their own, tighter
                mask_boxes = sample_rois(jax.random.fold_in(rng, 1), proposals, search_box,
                                         self.num_mask_rois, mask_thresh,
                                         int(self.config.model.search_size))['boxes']
            return dict(box_rois=roi_rows(boxes, half_pixel=True),
                        mask_rois=roi_rows(mask_boxes, half_pixel=False),
                        boxes=boxes, mask_boxes=mask_boxes, iou=sampled['iou'])

        return select

    def loss_fn(self, params, model_state, batch, rng, phase: int = 0):
        """SiamAttn's objective on a batch (module docstring).

        batch: SiamRPNTask's arrays plus search_box [B, 4] float32, negative [B] int32,
        search_mask [B, 255, 255] uint8, has_mask [B] int32. rng: the step key (RoI sampling).
        Returns (loss, (new_model_state, metrics)).
        """
        from siam.losses import mask_loss, refine_box_loss, siamrpn_loss
        from siam.targets import box_refine_targets, roi_mask_targets

        t = self.config.train
        params = self._stop_frozen_gradients(params, phase)
        layers = self.train_layers if self.backbone_trains(phase) else ()
        search_box = jnp.asarray(batch['search_box'], jnp.float32)
        outputs, new_state = self.model.apply(
            {'params': params, **model_state}, batch['template'], batch['search'],
            self.select_rois(rng, search_box), layers, method='train_forward',
            mutable=['batch_stats'])
        rpn, rpn_metrics = siamrpn_loss(outputs['cls'], outputs['loc'], batch['label'],
                                        batch['delta'], batch['delta_weight'], self.anchor_num,
                                        float(t.cls_weight), float(t.loc_weight))
        b = search_box.shape[0]
        rois = outputs['rois']
        positive = 1.0 - jnp.asarray(batch['negative'], jnp.float32)
        deltas = outputs['box']['deltas'].reshape(b, self.num_rois, 4)
        box = refine_box_loss(deltas, box_refine_targets(rois['boxes'], search_box), positive)
        logits = outputs['mask']['logits'][..., 0]
        size = logits.shape[-1]
        logits = logits.reshape(b, self.num_mask_rois, size, size)
        targets = roi_mask_targets(batch['search_mask'], rois['mask_boxes'], size)
        mask_weight = positive * jnp.asarray(batch['has_mask'], jnp.float32)
        mask = mask_loss(logits, targets, mask_weight, float(t.mask_ohem))
        loss = rpn + float(t.box_weight) * box + float(t.mask_weight) * mask
        metrics = dict(rpn_metrics, box_loss=box, mask_loss=mask,
                       positives=jnp.sum(batch['label'] == 1) / b,
                       roi_iou=_weighted_mean(jnp.mean(rois['iou'], 1), positive),
                       mask_iou=_weighted_mean(_mask_iou(logits, targets), mask_weight))
        return loss, ({**model_state, **new_state}, metrics)

    def sample_spec(self) -> dict:
        from tracking.data.pipeline import ArraySpec

        x = int(self.config.model.search_size)
        return dict(super().sample_spec(), search_mask=ArraySpec((x, x), np.uint8),
                    has_mask=ArraySpec((), np.int32))

    def sampler(self, sequences_per_dataset):
        from tracking.data.pysot_pairs import PysotPairSampler

        d, m = self.config.data, self.config.model
        return PysotPairSampler(sequences_per_dataset, tuple(d.ratios), tuple(d.frame_ranges), d,
                                int(m.template_size), int(m.search_size), int(self.config.seed),
                                targets=self.anchor_target(), masks=True)


def _mask_iou(logits, targets):
    """[B] mean over RoIs of IoU(sigmoid(logits) > 0.5, targets); logits, targets [B, K, M, M]."""
    pred = logits > 0
    gt = targets > 0.5
    inter = jnp.sum(pred & gt, axis=(2, 3))
    union = jnp.sum(pred | gt, axis=(2, 3))
    return jnp.mean(jnp.where(union > 0, inter / jnp.maximum(union, 1), 1.0), axis=1)


def _weighted_mean(values, weight):
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)

