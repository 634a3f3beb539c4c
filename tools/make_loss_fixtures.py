"""Reference losses and gradients for tests/test_loss_reference.py, computed with PyTorch.

Written from the fact sheets only, NOT from this repository's JAX code (nothing of grm_jax/,
siam/ or tracking/ is imported or copied):
  GRM / OSTrack  /work/shared/specs/grm.md, section 4: total = 2 GIoU + 5 L1 + 1 focal; boxes
                 (cx, cy, w, h) -> xyxy, GT (x, y, w, h) -> xyxy clamped to [0, 1]; GIoU loss
                 mean(1 - GIoU), 0 for the batch when a box is malformed (the official assert);
                 L1 = F.l1_loss on the xyxy boxes; CenterNet focal loss (alpha 2, beta 4, pred
                 clamped at 1e-12, divided by the number of cells with target == 1, or the plain
                 negative sum without any); the Gaussian heatmap target (generate_heatmap,
                 CornerNet radius with min_overlap 0.7 in its "bug" form, sigma = diameter / 6).
  SiamRPN++      /work/shared/specs/siamrpn.md, section 5: cls (B, 2A, H, W) viewed (B, 2, A, H,
                 W), permuted to (B, A, H, W, 2), log_softmax; select cross-entropy = 0.5 mean NLL
                 of label 1 + 0.5 mean NLL of label 0 over the whole batch (an empty set gives 0);
                 weighted L1 = sum over coords of |loc - delta| times delta_weight, summed, / B;
                 total = 1.0 cls + 1.2 loc.
Gradients are torch autograd of the total loss w.r.t. the predictions (GRM: the (cx, cy, w, h)
boxes and the score map of probabilities; SiamRPN++: the raw cls and loc maps), all in float64
from float32 inputs, so the stored values are the definitions' exact results up to float64
rounding; the tool also prints how far a float32 torch run lands from them.

Inputs come from numpy.random.default_rng(SEED); arrays keep the official NCHW layouts. Output:
one small .npz with keys '<case>/<name>' (cases grm, grm_nopos, grm_degenerate, siam,
siam_nopos), see the functions below.

Run (torch is not a dependency of this repository; use a separate environment):
  python tools/make_loss_fixtures.py tests/data/loss_reference.npz
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240601
MAP = 16          # GRM score map side (search 256 / stride 16)
A, S = 5, 7       # SiamRPN++ anchors per cell, score map side (25 in pysot; size does not matter)


# --------------------------------------------------------------------------- GRM (grm.md section 4)

def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xywh_to_xyxy(b):
    x, y, w, h = b.unbind(-1)
    return torch.stack([x, y, x + w, y + h], -1)


def generalized_iou(p, g):
    """Element-wise GIoU and IoU of [N, 4] xyxy boxes; raises on a malformed box."""
    if not (bool((p[:, 2:] >= p[:, :2]).all()) and bool((g[:, 2:] >= g[:, :2]).all())):
        raise AssertionError('malformed box')
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    inter_wh = (torch.min(p[:, 2:], g[:, 2:]) - torch.max(p[:, :2], g[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = area_p + area_g - inter
    iou = inter / union
    hull_wh = (torch.max(p[:, 2:], g[:, 2:]) - torch.min(p[:, :2], g[:, :2])).clamp(min=0)
    hull = hull_wh[:, 0] * hull_wh[:, 1]
    return iou - (hull - union) / hull, iou


def focal(pred, gt):
    """CenterNet focal loss, alpha 2, beta 4, summed over the whole batch."""
    pred = torch.clamp(pred, min=1e-12)
    pos = gt.eq(1).to(pred.dtype)
    neg = gt.lt(1).to(pred.dtype)
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    # On positive cells the negative term is multiplied by 0; log(1 - p) is finite there since
    # p < 1 in the inputs below.
    neg_loss = (torch.log(1 - pred) * pred ** 2 * (1 - gt) ** 4 * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def grm_objective(pred_cxcywh, score_map, gt_xywh, heatmap):
    pred = cxcywh_to_xyxy(pred_cxcywh)
    gt = xywh_to_xyxy(gt_xywh).clamp(min=0.0, max=1.0)
    try:
        giou, iou = generalized_iou(pred, gt)
        giou_loss, iou = (1 - giou).mean(), iou.mean()
    except AssertionError:
        giou_loss = iou = torch.zeros((), dtype=pred.dtype)
    l1 = F.l1_loss(pred, gt)
    focal_loss = focal(score_map, heatmap)
    total = 2.0 * giou_loss + 5.0 * l1 + 1.0 * focal_loss
    return total, dict(giou=giou_loss, l1=l1, focal=focal_loss, iou=iou)


def gaussian_radius(w, h, min_overlap=0.7):
    """CornerNet radius, the three roots each (b + sqrt(b^2 - 4ac)) / 2, minimum of the three."""
    a1, b1, c1 = 1.0, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def heatmaps(gt_xywh):
    """[B, MAP, MAP] Gaussian targets of normalised (x, y, w, h) boxes (float32 box arithmetic)."""
    out = np.zeros((len(gt_xywh), MAP, MAP), np.float32)
    for i, box in enumerate(torch.from_numpy(gt_xywh) * MAP):        # float32, like the official
        w, h = float(box[2]), float(box[3])
        cx, cy = (int(v) for v in torch.round(box[:2] + box[2:] / 2))   # half to even
        r = int(max(gaussian_radius(np.float32(w), np.float32(h)), 0))
        d = 2 * r + 1
        sigma = d / 6
        y, x = np.ogrid[-r:r + 1, -r:r + 1]
        g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
        g[g < np.finfo(g.dtype).eps * g.max()] = 0
        g = g.astype(np.float32)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if 0 <= cy + dy < MAP and 0 <= cx + dx < MAP:
                    out[i, cy + dy, cx + dx] = max(out[i, cy + dy, cx + dx], g[dy + r, dx + r])
    return out


def grm_case(rng, kind):
    b = 3
    centre = rng.uniform(0.3, 0.7, (b, 2))
    size = rng.uniform(0.15, 0.45, (b, 2))
    pred = np.concatenate([centre, size], 1).astype(np.float32)
    if kind == 'degenerate':
        pred[1, 2] = -0.05                       # negative width: GIoU loss falls back to 0
    gt_xy = rng.uniform(0.2, 0.5, (b, 2))
    gt_wh = rng.uniform(0.15, 0.4, (b, 2))
    gt = np.concatenate([gt_xy, gt_wh], 1).astype(np.float32)
    gt[0, 0] = -0.06                             # partly left of the crop: xyxy clamped to 0
    gt[2, 3] = 0.62                              # y + h > 1: clamped to 1
    heatmap = heatmaps(gt)
    if kind == 'nopos':
        heatmap = heatmap * np.float32(0.9)      # no cell == 1: loss = negative sum
    logits = 1.5 * rng.standard_normal((b, MAP, MAP)) - 2.0       # mostly low, some high
    score = (1 / (1 + np.exp(-logits))).astype(np.float32)
    score[0, 0, 0] = 1e-14                       # below the 1e-12 clamp (a negative cell)
    inputs = dict(pred_boxes=pred, score_map=score, gt_box=gt, heatmap=heatmap)
    return inputs, _grm_outputs(inputs, torch.float64), _grm_outputs(inputs, torch.float32)


def _grm_outputs(inputs, dtype):
    pred = torch.tensor(inputs['pred_boxes'], dtype=dtype, requires_grad=True)
    score = torch.tensor(inputs['score_map'], dtype=dtype, requires_grad=True)
    total, terms = grm_objective(pred, score, torch.tensor(inputs['gt_box'], dtype=dtype),
                                 torch.tensor(inputs['heatmap'], dtype=dtype))
    total.backward()
    out = {k: v.detach().numpy() for k, v in terms.items()}
    out.update(loss=total.detach().numpy(), grad_pred_boxes=pred.grad.numpy(),
               grad_score_map=score.grad.numpy())
    return out


# ------------------------------------------------------------------- SiamRPN++ (siamrpn.md section 5)

def select_cross_entropy(cls, label):
    b, a2, h, w = cls.shape
    logp = F.log_softmax(cls.view(b, 2, a2 // 2, h, w).permute(0, 2, 3, 4, 1), dim=4)
    logp, label = logp.reshape(-1, 2), label.reshape(-1)
    terms = []
    for klass in (1, 0):
        picked = torch.nonzero(label == klass).squeeze(1)
        if picked.numel() == 0:
            terms.append(torch.zeros((), dtype=cls.dtype))
        else:
            terms.append(F.nll_loss(logp[picked], label[picked]))
    return 0.5 * terms[0] + 0.5 * terms[1]


def weighted_l1(loc, delta, delta_weight):
    b, _, h, w = loc.shape
    diff = (loc.view(b, 4, -1, h, w) - delta).abs().sum(dim=1)
    return (diff * delta_weight).sum() / b


def siam_case(rng, kind):
    b = 2
    cls = rng.standard_normal((b, 2 * A, S, S)).astype(np.float32)
    loc = rng.standard_normal((b, 4 * A, S, S)).astype(np.float32)
    label = rng.choice([-1, 0, 1], size=(b, A, S, S), p=[0.6, 0.3, 0.1]).astype(np.int64)
    if kind == 'nopos':
        label[label == 1] = -1                   # no positive anywhere: that term is 0
    label[1, :, 0, 0] = 1 if kind != 'nopos' else -1
    delta = rng.standard_normal((b, 4, A, S, S)).astype(np.float32)
    delta_weight = np.zeros((b, A, S, S), np.float32)
    for i in range(b):
        positive = label[i] == 1
        delta_weight[i][positive] = 1.0 / (positive.sum() + 1e-6)
    inputs = dict(cls=cls, loc=loc, label=label, delta=delta, delta_weight=delta_weight)
    return inputs, _siam_outputs(inputs, torch.float64), _siam_outputs(inputs, torch.float32)


def _siam_outputs(inputs, dtype):
    cls = torch.tensor(inputs['cls'], dtype=dtype, requires_grad=True)
    loc = torch.tensor(inputs['loc'], dtype=dtype, requires_grad=True)
    cls_loss = select_cross_entropy(cls, torch.from_numpy(inputs['label']))
    loc_loss = weighted_l1(loc, torch.tensor(inputs['delta'], dtype=dtype),
                           torch.tensor(inputs['delta_weight'], dtype=dtype))
    total = 1.0 * cls_loss + 1.2 * loc_loss
    total.backward()
    return dict(loss=total.detach().numpy(), cls_loss=cls_loss.detach().numpy(),
                loc_loss=loc_loss.detach().numpy(), grad_cls=cls.grad.numpy(),
                grad_loc=loc.grad.numpy())


def main(path):
    rng = np.random.default_rng(SEED)
    arrays = {}
    cases = [('grm', grm_case, 'full'), ('grm_nopos', grm_case, 'nopos'),
             ('grm_degenerate', grm_case, 'degenerate'), ('siam', siam_case, 'full'),
             ('siam_nopos', siam_case, 'nopos')]
    for name, make, kind in cases:
        inputs, exact, single = make(rng, kind)
        for key, value in inputs.items():
            arrays[f'{name}/{key}'] = value
        for key, value in exact.items():
            arrays[f'{name}/{key}'] = np.asarray(value, np.float64)
            err = np.max(np.abs(np.asarray(single[key], np.float64) - value))
            scale = max(np.max(np.abs(value)), 1e-30)
            print(f'{name}/{key}: max |float32 - float64| = {err:.3g} ({err / scale:.3g} x max|ref|)'
                  f', ref max {scale:.4g}')
    np.savez_compressed(path, **arrays)
    print(f'wrote {path} ({len(arrays)} arrays)')


if __name__ == '__main__':
    main(sys.argv[1])
