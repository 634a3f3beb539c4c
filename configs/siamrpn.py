"""SiamRPN++ (pysot) configurations: `get_config(arg)` with arg in {r50_l234, r50_l234_otb, tiny}.

Use as `--config configs/siamrpn.py:r50_l234`. Values follow pysot's
experiments/siamrpn_r50_l234_dwxcorr{,_otb}/config.yaml (see /work/shared/specs/siamrpn.md §6.1).
The official weights take raw BGR 0..255 crops; the tracker converts the RGB frames itself.
"""
import ml_collections

VARIANTS = ('r50_l234', 'r50_l234_otb', 'tiny')


def _model(**kw):
    m = ml_collections.ConfigDict(dict(
        backbone=ml_collections.ConfigDict(dict(
            name='resnet_atrous',
            blocks=(3, 4, 6, 3),      # ResNet-50
            base_width=64,            # planes of layer1; layer L has base_width * 2**(L-1)
            used_layers=(2, 3, 4),
        )),
        neck=ml_collections.ConfigDict(dict(
            out_channels=(256, 256, 256),
            center_size=7,            # template maps (width < 20) are cropped to 7x7
        )),
        rpn=ml_collections.ConfigDict(dict(
            anchor_num=5,
            in_channels=(256, 256, 256),
            weighted=True,            # softmax-normalised level weights (False: plain mean)
        )),
        anchor=ml_collections.ConfigDict(dict(
            stride=8,
            ratios=(0.33, 0.5, 1.0, 2.0, 3.0),
            scales=(8.0,),
        )),
        template_size=127,            # TRACK.EXEMPLAR_SIZE
        search_size=255,              # TRACK.INSTANCE_SIZE
        precision='highest',          # matmul/conv precision (matters on GPU/TPU only)
    ))
    m.update(kw)
    return m


def _test(**kw):
    t = ml_collections.ConfigDict(dict(
        penalty_k=0.05,
        window_influence=0.42,
        lr=0.38,
        base_size=8,
        context_amount=0.5,
    ))
    t.update(kw)
    return t


def get_config(arg: str = 'r50_l234') -> ml_collections.ConfigDict:
    arg = arg or 'r50_l234'
    if arg not in VARIANTS:
        raise ValueError(f'configs/siamrpn.py: unknown variant {arg!r}; choose one of {VARIANTS}')
    c = ml_collections.ConfigDict()
    c.tracker = 'siamrpn'
    c.variant = arg
    c.seed = 42
    c.model = _model()
    c.test = _test()
    if arg == 'r50_l234_otb':
        c.model.rpn.weighted = False
        c.test = _test(penalty_k=0.24, window_influence=0.5, lr=0.25)
    elif arg == 'tiny':
        # Same strides, crop sizes and tracker maths; ~100x fewer parameters (CPU tests).
        c.model.backbone.blocks = (1, 1, 1, 1)
        c.model.backbone.base_width = 8
        c.model.neck.out_channels = (16, 16, 16)
        c.model.rpn.in_channels = (16, 16, 16)
    return c
