"""SiamAttn configurations: `get_config(arg)`, arg one of VARIANTS.

Use as `--config configs/siamattn.py:r50_l234`. Built on configs/siamrpn.py (same backbone, neck,
RPN, anchors, crop sizes); the model adds `arch='siamattn'`, the DSA (`attention`) and the region
refinement (`refine`). `r50_l234` is the official VOT2018 model and tracker
(config/config_vot2018.yaml of duliangao/siamattn_test; /work/shared/specs/siamattn_port.md
section 6, siamattn_and_evaluation.md A.8): PENALTY_K 0.10, WINDOW_INFLUENCE 0.25, LR 0.45,
MASK_THERSHOLD 0.2, MASK_OUTPUT_SIZE 64, BBOX_NORMALIZE_STDS (0.1, 0.1, 0.2, 0.2).
`tiny` keeps every stride, crop and map size at a fraction of the widths (CPU tests).
The official weights take raw BGR 0..255 crops.
"""
import importlib.util
import os

import ml_collections

VARIANTS = ('r50_l234', 'tiny')


def _siamrpn():
    """configs/siamrpn.py, loaded by path (configs/ is not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'siamrpn.py')
    spec = importlib.util.spec_from_file_location('_config_siamrpn_for_siamattn', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refine(**kw):
    r = ml_collections.ConfigDict(dict(
        channels=256,            # fusion / mask-head width
        fusion_level=1,          # mask features at layer1's size (63x63)
        roi_pool_size=16,        # ROIPOOL_OUTSIZE: mask pool 16x16, box pool 16 // 4 = 4x4
        box_hidden=512,          # FCx2DetHead width
        offset_hidden=1024,      # deformable RoI pooling offset MLP width (deform_fc_channels)
        mask_convs=4,
    ))
    r.update(kw)
    return r


def get_config(arg: str = 'r50_l234') -> ml_collections.ConfigDict:
    arg = arg or 'r50_l234'
    if arg not in VARIANTS:
        raise ValueError(f'configs/siamattn.py: unknown variant {arg!r}; choose one of {VARIANTS}')
    base = _siamrpn().get_config('r50_l234' if arg == 'r50_l234' else 'tiny')
    c = ml_collections.ConfigDict()
    c.tracker = 'siamattn'
    c.package = 'siam'  # the tracker package the core imports by name (tracking.plugins)
    c.variant = arg
    c.seed = base.seed
    c.model = base.model
    c.model.arch = 'siamattn'
    c.model.backbone.used_layers = (0, 1, 2, 3, 4)   # conv1 and layer1 feed the mask fusion
    c.model.refine = _refine()
    c.test = base.test
    c.test.penalty_k = 0.10
    c.test.window_influence = 0.25
    c.test.lr = 0.45
    c.test.mask_threshold = 0.2
    c.test.bbox_stds = (0.1, 0.1, 0.2, 0.2)
    c.test.bbox_means = (0.0, 0.0, 0.0, 0.0)
    c.test.mask = True                # VOT reports the polygon; one-pass benchmarks the box
    c.train = base.train
    c.data = base.data
    _train(c)
    if arg == 'tiny':
        c.model.refine.channels = 32     # 16 before the fifth run (docs/siamattn.md)
        c.model.refine.box_hidden = 32
        c.model.refine.offset_hidden = 32
        _train_tiny(c)
    return c


def _train(c):
    """SiamAttn's recipe (siamattn_and_evaluation.md A.6-A.7; docs/siamattn.md "Training") on
    top of SiamRPN++'s (warm-up 5 epochs 0.001 -> 0.005, then log 0.005 -> 0.0005, 20 epochs,
    SGD 0.9, weight decay 1e-4, clip 10, anchor thresholds 0.6 / 0.3, 20% negative pairs)."""
    t = c.train
    t.optimizer = 'sgd'              # torch SGD as SiamRPN++ (siam/attn_task.py: 'adam' for tiny)
    # Loss weights of the official yamls (config_vot2018.yaml): CLS 5.0, LOC 1.2, BBOX 1.0,
    # MASK 0.5; the mask BCE keeps the 70% largest pixel losses of each RoI (official OHEM).
    t.cls_weight = 5.0
    t.loc_weight = 1.2
    t.box_weight = 1.0
    t.mask_weight = 0.5
    t.mask_ohem = 0.7
    t.rois = 16                      # RoIs sampled per search image (box head)
    t.mask_rois = 16                 # the first mask_rois of them also train the mask head
    t.roi_fg_thresh = 0.5            # FG_THRESH; FG_FRACTION 1: every RoI is foreground
    # > 0: the mask RoIs are drawn on their own among candidates with IoU >= this (tiny);
    # 0: they are the first mask_rois of the box RoIs (official).
    t.mask_roi_fg_thresh = 0.0
    # Backbone: layer2-4 unfrozen at epoch 10 with lr x 0.05 (paper: "20x smaller").
    t.backbone_train_epoch = 10
    t.backbone_lr_mult = 0.05
    t.backbone_train_layers = ('layer2', 'layer3', 'layer4')
    # BATCH_SIZE 11 per GPU in the official yamls; 8 GPUs assumed (the count is not published),
    # gradients summed over them as pysot does.
    t.batch_size = 88
    t.loss_scale = 8.0
    d = c.data
    # Paper mix: COCO, YouTube-VOS (both with masks), LaSOT, TrackingNet; frame ranges of the
    # released config.py (COCO 1, YTBVOS 20 annotated frames, LASOT 300, TKN 100).
    d.datasets = ('coco', 'youtube_vos', 'lasot', 'trackingnet')
    d.ratios = (1.0, 1.0, 1.0, 1.0)
    d.frame_ranges = (1, 20, 300, 100)
    d.roots.youtube_vos = ''
    d.template.update(dict(shift=4.0, scale=0.05, blur=0.0, flip=0.0, color=0.5))
    d.search.update(dict(shift=64.0, scale=0.18, blur=0.2, flip=0.2, color=0.5))


def _train_tiny(c):
    """Learns boxes and masks on the embedded synthetic dataset (1.2.0, with masks) on a CPU in
    minutes: SiamRPN++-tiny's schedule (random init, everything trains from step 0), few mask
    RoIs (the deformable RoI pooling backward is the slow part on a CPU)."""
    t, d = c.train, c.data
    c.model.refine.roi_pool_size = 8     # mask pool 8x8 -> 32x32 logits
    c.model.refine.box_pool_size = 4     # the official 4x4 box pool (2x2 did not refine)
    # Adam instead of SGD: with SGD the refinement heads' gradients are 1e-3..1e-2 of the
    # backbone's (global clip at 10 then shrinks them further) and the box / mask heads
    # barely moved in 250 steps. Same lr table x 0.1 (warm-up 2e-4 -> 1e-3, log -> 1e-4).
    t.optimizer = 'adam'
    t.base_lr = 0.001
    t.batch_size = 8
    t.loss_scale = 1.0
    t.cls_weight = 1.0
    # 4 mask RoIs per image with mask-loss weight 2 (official 0.5) and 32 refinement channels:
    # masks 0.878 vs 0.819 with 2 RoIs, weight 0.5, 16 channels, 3000 steps (fifth run).
    t.mask_rois = 4
    t.mask_weight = 2.0
    # The deformable RoI pools' offset MLPs do not train (lr x 0: offsets stay 0, plain RoI
    # pools): under Adam they moved by ~lr per step like every leaf, and after 200 steps the
    # offsets averaged 10-24% of the RoI (max 86%; a mask bin is 12.5%) (docs/siamattn.md).
    t.offset_lr_mult = 0.0
    # Mask RoIs drawn among candidates with IoU >= 0.8 (box RoIs keep 0.5): trained on loose
    # RoIs the head learned to find the object inside them and eroded tight ones (third diagnosis).
    t.mask_roi_fg_thresh = 0.8
    t.backbone_train_epoch = 0
    t.backbone_lr_mult = 1.0
    t.backbone_train_layers = ('conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4')
    # 600 steps per epoch, 6000 in all (about 55 minutes on 2 idle cores). Mask mIoU against a
    # box-shaped mask's 0.775: 0.848 at step 3000, 0.878 at 6000 (docs/siamattn.md, "Fifth run").
    d.samples_per_epoch = 4800
    d.datasets = ('synthetic',)
    d.ratios = (1.0,)
    d.frame_ranges = (20,)
    d.template.update(dict(shift=4.0, scale=0.05, blur=0.0, flip=0.0, color=1.0))
    d.search.update(dict(shift=64.0, scale=0.18, blur=0.2, flip=0.2, color=1.0))
