"""SiamAttn's refinement measured directly from the model on held-out synthetic frames.

For frames of the synthetic test split (version 1.2.0, with rendered masks): the template is the
first frame's training crop, the search region the GT-centred training crop of frame t (no
augmentation), the mask head runs on the GT box as its RoI and the box head on the GT box moved
and resized at random. Reported per model (a training workdir / checkpoint, and the untrained
model of the config):
  mask_iou       mean IoU of (logit > 0) with the rendered mask RoI-aligned to the same grid
                 (`siam.targets.roi_mask_targets`, the training target);
  box_mask_iou   the same for a box-shaped mask (every cell of the RoI set): the baseline;
  refine_before / refine_after: mean IoU with the GT of the jittered boxes before / after the
                 box head's refinement (deltas x stds, the tracker's decoding, no clipping);
                 refine_after averages the finite IoUs, refine_nonfinite counts the others
                 (an untrained head's deltas can overflow exp);
  by_fill        mask_iou, box_mask_iou and the predicted fill per group of frames, grouped by
                 the fraction of the RoI the rendered mask fills (FILL_GROUPS: 1 for an
                 unoccluded rectangle, about pi/4 for an ellipse, less when occluded or cut).
Usage:
  python benchmarks/siamattn_masks.py --config configs/siamattn.py:tiny --checkpoint WORKDIR \
      [--set model.refine.channels=32 ...] [--sequences 30] [--every 10] [--out results.json]
(--set: the overrides the workdir was trained with, so the model matches its checkpoint.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def crops(sequence, t: int, template_size: int, search_size: int):
    """(template [Z, Z, 3], search [X, X, 3] float32 BGR, GT corners in the search crop [4],
    rendered mask in the search crop [X, X] uint8) without augmentation."""
    from tracking.data import augment as aug
    from tracking.data.masks import sequence_mask
    from tracking.data.pysot_pairs import CROP_SIZE

    none = aug.AugmentParams()
    rng = np.random.default_rng(0)
    t_crop, t_box = aug.siamfc_crop(sequence.frame(0), sequence.boxes[0], CROP_SIZE)
    template, _ = aug.augment(rng, t_crop[..., ::-1].copy(), t_box, template_size, none)
    s_crop, s_box = aug.siamfc_crop(sequence.frame(t), sequence.boxes[t], CROP_SIZE)
    mask = aug.siamfc_mask_crop(sequence_mask(sequence, t), sequence.boxes[t], CROP_SIZE)
    search, box, mask = aug.augment_with_mask(rng, s_crop[..., ::-1].copy(), s_box, mask,
                                              search_size, none)
    return template, search, box.astype(np.float32), mask


def _iou_xyxy(a, b):
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    union = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
             + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter)
    return inter / union


def make_measure(config):
    """A jitted fn(variables, template, search, gt_box [4], jitter [4]) -> (mask logits
    [M, M], mask target [M, M], refined box [4] xyxy, jittered box [4] xyxy)."""
    import jax
    import jax.numpy as jnp

    from siam.siamattn import build_model
    from siam.targets import BOX_STDS, roi_mask_targets, roi_rows

    model = build_model(config.model)

    @jax.jit
    def measure(variables, z, x, box, mask, jitter):
        gt = jnp.stack([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0],
                        box[3] - box[1]])
        zf = model.apply(variables, z[None], method='template_features')['neck']
        out = model.apply(variables, x[None], zf, method='track_forward')
        mask_out = model.apply(variables, out['mask_features'],
                               roi_rows(gt[None, None], half_pixel=False), method='refine_mask')
        logits = mask_out['logits'][0, ..., 0]
        target = roi_mask_targets(mask[None], gt[None, None], logits.shape[-1])[0, 0]
        moved = jnp.stack([gt[0] + jitter[0] * gt[2], gt[1] + jitter[1] * gt[3],
                           gt[2] * jnp.exp(jitter[2]), gt[3] * jnp.exp(jitter[3])])
        deltas = model.apply(variables, out['box_features'],
                             roi_rows(moved[None, None], half_pixel=True),
                             method='refine_box')['deltas'][0] * jnp.asarray(BOX_STDS)
        refined = jnp.stack([moved[0] + deltas[0] * moved[2], moved[1] + deltas[1] * moved[3],
                             moved[2] * jnp.exp(deltas[2]), moved[3] * jnp.exp(deltas[3])])

        def corners(b):
            return jnp.stack([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2])
        return logits, target, corners(refined), corners(moved)

    return measure


# (name, low, high): frames whose GT fill fraction of the RoI lies in [low, high).
FILL_GROUPS = (('rectangles (fill > 0.95)', 0.95, 1.01), ('ellipses (fill 0.70-0.85)', 0.70, 0.85),
               ('occluded or cut (fill < 0.70)', 0.0, 0.70))


def evaluate(config, variables, frames, measure, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    mask_iou, box_iou, before, after, fill = [], [], [], [], []
    for z, x, box, mask in frames:
        jitter = np.concatenate([rng.uniform(-0.15, 0.15, 2), rng.uniform(-0.2, 0.2, 2)])
        logits, target, refined, moved = (np.asarray(v) for v in measure(
            variables, z, x, box, mask, jitter.astype(np.float32)))
        gt = target > 0.5
        pred = logits > 0
        if gt.sum() == 0:
            continue
        mask_iou.append((pred & gt).sum() / (pred | gt).sum())
        box_iou.append(gt.sum() / gt.size)       # all-ones mask: IoU = |gt| / |RoI|
        fill.append(pred.mean())
        before.append(_iou_xyxy(moved, box))
        after.append(_iou_xyxy(refined, box))
    mask_iou, box_iou, fill = np.asarray(mask_iou), np.asarray(box_iou), np.asarray(fill)
    by_fill = {}
    for name, low, high in FILL_GROUPS:
        sel = (box_iou >= low) & (box_iou < high)
        by_fill[name] = dict(frames=int(sel.sum()), mask_iou=float(mask_iou[sel].mean()),
                             box_mask_iou=float(box_iou[sel].mean()),
                             predicted_fill=float(fill[sel].mean()))
    after = np.asarray(after)
    finite = np.isfinite(after)   # an untrained box head's deltas can overflow exp()
    return dict(frames=len(mask_iou), mask_iou=float(np.mean(mask_iou)),
                box_mask_iou=float(np.mean(box_iou)), refine_before=float(np.mean(before)),
                refine_after=float(np.mean(after[finite])) if finite.any() else float('nan'),
                refine_nonfinite=int((~finite).sum()), by_fill=by_fill)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/siamattn.py:tiny')
    parser.add_argument('--checkpoint', required=True, help='training workdir or checkpoint')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='config override (as train.py --config.KEY=VALUE), repeatable')
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--every', type=int, default=10, help='every n-th visible frame')
    parser.add_argument('--out', default='')
    args = parser.parse_args(argv)

    from tracking.config import load_config
    from tracking.data.synthetic import load_synthetic
    from tracking.variables import load_variables, untrained_variables

    config = load_config(args.config, args.set)
    m = config.model
    frames = []
    for sequence in load_synthetic('test', config.data.roots.get('synthetic') or None,
                                   num_sequences=args.sequences):
        visible = np.flatnonzero(sequence.visible)
        for t in visible[visible > 0][::args.every]:
            frames.append(crops(sequence, int(t), int(m.template_size), int(m.search_size)))
    measure = make_measure(config)
    results = {}
    for name, variables in (('trained', load_variables(config, args.checkpoint)[0]),
                            ('untrained', untrained_variables(config))):
        start = time.time()
        results[name] = evaluate(config, variables, frames, measure)
        results[name]['seconds'] = round(time.time() - start, 1)
        print(name, json.dumps(results[name]), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, overrides=args.set, checkpoint=args.checkpoint,
                           **results), f, indent=1)


if __name__ == '__main__':
    main()
