"""SiamRPN++ (pysot) configurations: `get_config(arg)`, arg one of VARIANTS.

Use as `--config configs/siamrpn.py:r50_l234`. Values follow pysot's
experiments/siamrpn_r50_l234_dwxcorr{,_otb}/config.yaml (see /work/shared/specs/siamrpn.md §6.1).
The official weights take raw BGR 0..255 crops; the tracker converts the RGB frames itself.
"""
import ml_collections

VARIANTS = ('r50_l234', 'r50_l234_otb', 'tiny', 'alex', 'alex_otb', 'mobilev2')


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
            type='multi',             # 'multi' (per level), 'depthwise' (one level), 'up'
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
        # 'xla' (the parity path); 'winograd' / 'winograd4': the ResNet backbone's and the
        # depthwise RPN heads' 3x3 stride-1 convs in Winograd F(2x2, 3x3) / F(4x4, 3x3) form
        # and their bias-free 1x1 convs as matmuls (inference only, faster on CPU; outputs
        # differ from 'xla' by float32 rounding, F(4x4) about 14x F(2x2)'s: docs/performance.md).
        conv_impl='xla',
        # Tracking search crop (TRACK.INSTANCE_SIZE); None: model.search_size.
        instance_size=ml_collections.config_dict.placeholder(int),
        # Network precision: 'float32' (the parity path), 'tf32' or 'bfloat16'
        # (tracking/precision.py; docs/performance.md "Test precision").
        precision='float32',
    ))
    t.update(kw)
    return t


def _train(**kw):
    """pysot experiments/siamrpn_r50_l234_dwxcorr_8gpu TRAIN / BACKBONE sections (docs/siamrpn.md)."""
    t = ml_collections.ConfigDict(dict(
        batch_size=224,              # global batch (pysot: 8 GPUs x 28)
        num_epochs=20,
        num_steps=-1,                # -1: num_epochs * samples_per_epoch // batch_size
        # Per-epoch learning rate: 'step' warm-up start -> end over warmup_epochs, then a
        # log-space from log_start to log_end over the remaining epochs.
        warmup_epochs=5,
        warmup_start_lr=0.001,
        warmup_end_lr=0.005,
        log_start_lr=0.005,
        log_end_lr=0.0005,
        base_lr=0.005,               # neck/head lr = lr_space * base_lr / log_start_lr
        backbone_lr_mult=0.1,        # pysot BACKBONE.LAYERS_LR
        backbone_train_epoch=10,     # epoch from which backbone_train_layers are trained
        backbone_train_layers=('layer2', 'layer3', 'layer4'),
        momentum=0.9,
        weight_decay=1e-4,
        grad_clip_norm=10.0,
        # pysot sums gradients over its GPUs (8) instead of averaging; the loss here is the
        # global-batch mean, so it is multiplied by this to give the same update size.
        loss_scale=8.0,
        cls_weight=1.0,
        loc_weight=1.2,
        pretrained='',               # pysot ImageNet backbone file (resnet50.model) or ''
        checkpoint_every_steps=1000,
        keep_checkpoints=3,
        log_every_steps=20,
        tensorboard=True,
    ))
    t.update(kw)
    return t


def _data(**kw):
    """Training data (pysot DATASET section) and anchor-target parameters (TRAIN.*)."""
    d = ml_collections.ConfigDict(dict(
        datasets=('got10k_train', 'lasot', 'coco'),
        ratios=(1.0, 1.0, 1.0),
        frame_ranges=(100, 100, 1),  # max template-search distance per dataset, in frames
        roots=ml_collections.ConfigDict(dict(got10k='', lasot='', coco='', trackingnet='',
                                             synthetic='')),
        index_cache='',              # dataset index folder ('' = beside the data, or ~/.cache)
        samples_per_epoch=600000,    # pysot VIDEOS_PER_EPOCH
        neg=0.2,                     # probability of a negative pair
        gray=0.0,
        template=ml_collections.ConfigDict(dict(shift=4.0, scale=0.05, blur=0.0, flip=0.0,
                                                color=1.0)),
        search=ml_collections.ConfigDict(dict(shift=64.0, scale=0.18, blur=0.2, flip=0.0,
                                              color=1.0)),
        targets=ml_collections.ConfigDict(dict(thr_high=0.6, thr_low=0.3, pos_num=16,
                                               total_num=64, neg_num=16)),
        output_size=25,              # score-map side in training (pysot TRAIN.OUTPUT_SIZE)
        num_parallel_calls=8,
        prefetch=2,
    ))
    d.update(kw)
    return d


def get_config(arg: str = 'r50_l234') -> ml_collections.ConfigDict:
    arg = arg or 'r50_l234'
    if arg not in VARIANTS:
        raise ValueError(f'configs/siamrpn.py: unknown variant {arg!r}; choose one of {VARIANTS}')
    c = ml_collections.ConfigDict()
    c.tracker = 'siamrpn'
    c.package = 'siam'  # the tracker package the core imports by name (tracking.plugins)
    c.variant = arg
    c.seed = 42
    c.model = _model()
    c.test = _test()
    c.train = _train()
    c.data = _data()
    if arg == 'r50_l234_otb':
        c.model.rpn.weighted = False
        c.test = _test(penalty_k=0.24, window_influence=0.5, lr=0.25)
    elif arg == 'tiny':
        # Same strides, crop sizes and tracker maths; ~100x fewer parameters (CPU tests).
        c.model.backbone.blocks = (1, 1, 1, 1)
        c.model.backbone.base_width = 8
        c.model.neck.out_channels = (16, 16, 16)
        c.model.rpn.in_channels = (16, 16, 16)
        # Trains on the embedded synthetic dataset on a CPU in minutes (README, docs/siamrpn.md).
        c.data.datasets = ('synthetic',)
        c.data.ratios = (1.0,)
        c.data.frame_ranges = (20,)
        c.data.samples_per_epoch = 1600
        c.data.num_parallel_calls = 2
        c.train.batch_size = 16
        c.train.num_epochs = 10
        c.train.warmup_epochs = 2
        c.train.warmup_start_lr = 0.002
        c.train.warmup_end_lr = 0.01
        c.train.log_start_lr = 0.01
        c.train.log_end_lr = 0.001
        c.train.base_lr = 0.01
        c.train.backbone_train_epoch = 0     # random init: the backbone trains from the start
        c.train.backbone_train_layers = ('conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4')
        c.train.backbone_lr_mult = 1.0
        c.train.loss_scale = 1.0
        c.train.checkpoint_every_steps = 500
    elif arg in ('alex', 'alex_otb'):
        # siamrpn_alex_dwxcorr{,_otb}: AlexNet (legacy keys), no neck, one depthwise RPN;
        # trained on 255 search crops (17x17 maps), tracked on 287 crops (21x21, BASE_SIZE 0).
        c.model.backbone = ml_collections.ConfigDict(dict(name='alexnetlegacy', width_mult=1.0))
        c.model.neck = None
        c.model.rpn.type = 'depthwise'
        c.model.rpn.in_channels = (256,)
        c.model.rpn.weighted = False
        c.test = _test(penalty_k=0.16, window_influence=0.40, lr=0.30, base_size=0)
        c.test.instance_size = 287
        # Training: siamrpn_alex_dwxcorr_16gpu (16 GPUs x 24, 50 epochs, layer4/5 at lr x 1).
        c.data.output_size = 17
        c.train.batch_size = 384
        c.train.loss_scale = 16.0
        c.train.num_epochs = 50
        c.train.warmup_start_lr, c.train.warmup_end_lr = 0.005, 0.01
        c.train.log_start_lr, c.train.log_end_lr = 0.01, 0.0005
        c.train.base_lr = 0.005               # heads get 0.5 x the lr space
        c.train.backbone_train_layers = ('layer4', 'layer5')
        c.train.backbone_lr_mult = 1.0
    elif arg == 'mobilev2':
        # siamrpn_mobilev2_l234_dwxcorr: MobileNetV2 x1.4, layers 3/5/7 (44/134/448 channels).
        c.model.backbone = ml_collections.ConfigDict(dict(
            name='mobilenetv2', width_mult=1.4, used_layers=(3, 5, 7)))
        c.model.rpn.weighted = False
        c.test = _test(penalty_k=0.04, window_influence=0.4, lr=0.5)
        # Training: the r50 recipe; the trained layers are not in the fact sheet, the
        # returned ones (3, 5, 7) are a guess (docs/siamrpn.md).
        c.train.backbone_train_layers = ('layer3', 'layer5', 'layer7')
    return c
