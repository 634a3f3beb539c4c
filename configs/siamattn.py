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
    if arg == 'tiny':
        c.model.refine.channels = 16
        c.model.refine.box_hidden = 32
        c.model.refine.offset_hidden = 32
    return c
