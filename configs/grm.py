"""GRM configurations: `get_config(arg)` with arg in {vitb_256, vitb_256_got, vitl_320, tiny}.

Use as `--config configs/grm.py:tiny`; override any field with `--config.train.lr=1e-3`.
Values follow the official experiments/grm/*.yaml files (see docs/grm.md).
"""
import ml_collections

VARIANTS = ('vitb_256', 'vitb_256_got', 'vitl_320', 'tiny')


def _model(**kw):
    m = ml_collections.ConfigDict(dict(
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        division_hidden=(384, 192),
        drop_path_rate=0.1,
        head_channels=256,
        template_size=128,
        search_size=256,
        template_factor=2.0,
        search_factor=4.0,
    ))
    m.update(kw)
    return m


def get_config(arg: str = 'vitb_256') -> ml_collections.ConfigDict:
    arg = arg or 'vitb_256'
    if arg not in VARIANTS:
        raise ValueError(f'configs/grm.py: unknown variant {arg!r}; choose one of {VARIANTS}')
    c = ml_collections.ConfigDict()
    c.tracker = 'grm'
    c.package = 'grm_jax'  # the tracker package the core imports by name (tracking.plugins)
    c.variant = arg
    c.seed = 42

    c.model = _model()

    c.data = ml_collections.ConfigDict(dict(
        # Training sets (names understood by tracking.data.datasets) and their sampling ratios.
        datasets=('lasot', 'got10k_vot_train', 'coco', 'trackingnet'),
        ratios=(1.0, 1.0, 1.0, 1.0),
        # Root folders of the datasets on disk (read in place, never copied).
        roots=ml_collections.ConfigDict(dict(
            lasot='', got10k='', coco='', trackingnet='', synthetic='')),
        # Dataset index folder (tracking/data/index.py); '' = <root>/.tracking_index or ~/.cache.
        index_cache='',
        samples_per_epoch=60000,
        max_gap=200,
        template_center_jitter=0.0,
        template_scale_jitter=0.0,
        search_center_jitter=3.0,
        search_scale_jitter=0.25,
        gray_prob=0.05,
        flip_prob=0.5,        # joint flip of the full frames
        crop_flip_prob=0.5,   # per-crop flip
        brightness_jitter=0.2,
        num_parallel_calls=8,
        prefetch=2,
    ))

    c.train = ml_collections.ConfigDict(dict(
        batch_size=320,          # global batch (official: 8 GPUs x 40)
        num_epochs=300,
        num_steps=-1,            # -1: num_epochs * samples_per_epoch // batch_size
        lr=4e-4,
        backbone_lr_mult=0.1,    # backbone (not division MLPs) learning-rate multiplier
        weight_decay=1e-4,
        lr_drop_epoch=240,
        lr_drop_factor=0.1,
        grad_clip_norm=0.1,
        giou_weight=2.0,
        l1_weight=5.0,
        focal_weight=1.0,
        pretrained='',           # MAE checkpoint (.pth) to initialise the ViT from
        log_every_steps=50,
        checkpoint_every_steps=1000,
        keep_checkpoints=3,
    ))

    # Division threshold per benchmark at test time (0 = argmax), official TEST.HYPER.
    c.test = ml_collections.ConfigDict(dict(
        thresholds=ml_collections.ConfigDict(dict(
                        lasot=0.4, nfs=0.6, uav123=0.55, avist=0.4, default=0.0)),
        # Network precision: 'float32' (the parity path), 'tf32' or 'bfloat16'
        # (tracking/precision.py; docs/performance.md "Test precision").
        precision='float32',
    ))

    if arg == 'vitb_256_got':
        c.data.datasets = ('got10k_train',)
        c.data.ratios = (1.0,)
        c.train.num_epochs = 100
        c.train.lr_drop_epoch = 80
        c.test.thresholds = ml_collections.ConfigDict(dict(default=0.0))
    elif arg == 'vitl_320':
        c.model = _model(embed_dim=1024, depth=24, num_heads=16, search_size=320, search_factor=5.0)
        c.data.search_center_jitter = 4.5
        c.data.search_scale_jitter = 0.5
        c.train.batch_size = 80
        c.test.thresholds = ml_collections.ConfigDict(dict(default=0.0))
    elif arg == 'tiny':
        # Small enough to train on 2 CPU cores in minutes on the embedded synthetic dataset.
        c.model = _model(patch_size=16, embed_dim=64, depth=4, num_heads=4,
                         division_hidden=(64, 32), drop_path_rate=0.0, head_channels=64,
                         template_size=64, search_size=128)
        c.data.datasets = ('synthetic',)
        c.data.ratios = (1.0,)
        c.data.samples_per_epoch = 3200
        c.data.num_parallel_calls = 2
        # Crops centred closer to the target than the official 3.0: a model trained from
        # scratch for minutes learns to refine the box around the centre, which is what
        # tracking needs from frame to frame.
        c.data.search_center_jitter = 1.0
        c.train.batch_size = 16
        c.train.num_epochs = 25                 # 5000 steps, about 8 minutes on 2 CPU cores
        c.train.lr = 1e-3
        c.train.backbone_lr_mult = 1.0
        c.train.lr_drop_epoch = 20
        c.train.grad_clip_norm = 1.0
        c.train.log_every_steps = 20
        c.train.checkpoint_every_steps = 200
        c.test.thresholds = ml_collections.ConfigDict(dict(default=0.0))
    return c
