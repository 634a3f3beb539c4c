"""ROAM (tyyyang/ROAM) configurations: `get_config(arg)`, arg one of VARIANTS.

Use as `--config configs/roam.py:vgg16`. `vgg16` holds the official model, meta-training and
tracker values (config.py of the official code; /work/shared/specs/roam.md); `tiny` has small
widths and crops (CPU tests and the synthetic meta-training demo). docs/roam.md.
"""
import math

import ml_collections

VARIANTS = ('vgg16', 'tiny')


def _model(**kw):
    m = ml_collections.ConfigDict(dict(
        vgg_channels=(64, 64, 128, 128, 256, 256, 256, 512, 512, 512),  # conv1_1 .. conv4_3
        feat_channels=512,          # relu4_3 width
        rgb_mean=(123.68, 116.779, 103.939),   # subtracted from RGB 0..255, no division
        cf_channels=64,             # 1x1 compression of each branch
        base_filter_size=(21, 21),  # (fw, fh) of the stored filters
        # Static side K of the warped filters (odd; aspect 1/11.4 .. 11.4 fits at 71; larger
        # filter sides are clamped to K; docs/roam.md).
        max_filter_size=71,
        # 'fft' (circular correlation of size fft_size(71, K) = 108; cost ~independent of K)
        # or 'direct' (a K x K convolution; K^2 / (fs_w fs_h) times the official work).
        correlation='fft',
        filter_scale=1.5,
        cell_size=4,                # feature stride
        base_target_size=56,        # target side (px) the crop normalises to
        search_scale=5,             # window = search_scale * sqrt(w h), forced odd
        crop_size=281,              # base window: base_target_size * search_scale, forced odd
        map_size=71,                # label / feature map side: ceil(crop_size / cell_size)
        output_sigma_factor=0.1,
        alpha=0.2,                  # Gaussian label exp(-alpha ((x/sx)^2 + (y/sy)^2))
        anchor_pos_num=32,          # positive anchors per frame (global top-k over the batch)
        lstm_hidden=20,
        lstm_layers=2,
        lstm_bias_init=-10.0,       # Linear(20 -> 1) bias: initial rate sigmoid(-10)
        meta_lr_init=1e-6,          # lambda0 initial value
        theta_init_scale=1e-5,      # theta0 ~ N(0, 1) / sqrt(fan) * 1e-5
        grad_preprocess_p=10.0,
        precision='highest',
    ))
    m.update(kw)
    return m


def _train(**kw):
    t = ml_collections.ConfigDict(dict(
        look_ahead=5,               # tau: frames per update window
        time_step=6,                # 1 first-frame step (lambda0) + 5 LSTM steps
        clip_length=31,             # 1 init frame + time_step * look_ahead frames
        init_aug_ratios=(1.0, 0.8, 1.2),
        init_aug_scales=(1.0, 0.8, 1.2),
        aug_ratios_range=(0.8, 1.2),
        aug_scales_range=(0.8, 1.2),
        offset_range=112,           # random crop shift U[-112, 112) patch px per axis
        rand_scale_radius_cf=1.6,   # Random Filter Scaling exp(kappa U(-1, 1))
        rand_scale_radius_reg=1.3,
        meta_init_lr=1e-6,          # Adam on theta0, lambda0
        meta_opt_lr=1e-3,           # Adam on the LSTM + linear
        meta_init_grad_clip=10.0,   # element-wise clamp before the Adam step
        meta_opt_grad_clip=1.0,
        meta_opt_b2=0.999,          # Adam beta2 of the LSTM group (official: torch default)
        colour_augment=False,       # per-clip RGB permutation/inversion (roam.clips; tiny only)
        skip_nonfinite=False,       # skip batches with a non-finite meta-gradient (tiny only)
        # Where the LSTM steps' meta-gradient is cut (roam.meta.meta_gradient_mode):
        # 'official' (metanets.py:65, roam.py:108) or 'full' (through the whole unroll).
        meta_gradient='official',
        lr_decay=0.5,
        lr_decay_every_epochs=5,
        num_epochs=20,
        num_steps=-1,               # -1: num_epochs * data.samples_per_epoch // batch_size
        batch_size=16,
        seed=42,
        # Frozen extractor weights: MatConvNet imagenet-vgg-verydeep-16.mat (what the official
        # code loads) or a torchvision vgg16 .pth. Empty: random frozen widths (tiny only,
        # unless allow_random_vgg).
        vgg_weights='',
        allow_random_vgg=False,
        checkpoint_every_steps=500,
        keep_checkpoints=3,
        log_every_steps=10,
        tensorboard=True,
    ))
    t.update(kw)
    return t


def _test(**kw):
    t = ml_collections.ConfigDict(dict(
        score_penalty_factor=0.05,
        motion_sigma_factor=0.5,    # loose window: 2x
        n_init_updates=1,           # lambda0 steps on the first frame (official: 1, hard-coded)
        n_online_updates=2,
        update_interval=5,
        n_update_batch=5,
        max_db_size=10,
        size_decay=0.6,
        handle_drift=True,
        miss_thres=0.1,
        reliable_thres=0.6,
        min_size=10.0,
        # Network precision: 'float32' (the parity path), 'tf32' or 'bfloat16'
        # (tracking/precision.py; docs/performance.md "Test precision").
        precision='float32',
    ))
    t.update(kw)
    return t


def _data(**kw):
    d = ml_collections.ConfigDict(dict(
        datasets=('imagenet_vid',),
        ratios=(1.0,),
        min_track_length=50,        # make_vid_info.py: tracks of >= 50 visible frames
        # One epoch = one pass over the training tracks (the official DataLoader over VID's
        # track list; its size is not stated in the code): set to your track count.
        samples_per_epoch=8000,
        roots=ml_collections.ConfigDict(dict(imagenet_vid='', got10k='', lasot='',
                                             synthetic='')),
        index_cache='',
        num_parallel_calls=8,
        prefetch=2,
    ))
    d.update(kw)
    return d


def get_config(arg: str = 'vgg16') -> ml_collections.ConfigDict:
    arg = arg or 'vgg16'
    if arg not in VARIANTS:
        raise ValueError(f'configs/roam.py: unknown variant {arg!r}; choose one of {VARIANTS}')
    c = ml_collections.ConfigDict()
    c.tracker = 'roam'
    c.package = 'roam'  # the tracker package the core imports by name (tracking.plugins)
    c.variant = arg
    c.seed = 42
    c.model = _model()
    c.train = _train()
    c.test = _test()
    c.data = _data()
    if arg == 'tiny':
        # Same geometry rules at a quarter of the target size: 81 px crops, 21x21 maps,
        # 7x7 base filters, narrow VGG (random; frozen in meta-training) and 8-channel
        # compression. Meta-training on the synthetic set: CPU minutes (docs/roam.md).
        c.model.vgg_channels = (8, 8, 16, 16, 16, 16, 16, 32, 32, 32)
        c.model.feat_channels = 32
        c.model.cf_channels = 8
        c.model.base_filter_size = (7, 7)
        c.model.max_filter_size = 21
        c.model.base_target_size = 16
        c.model.crop_size = 81
        c.model.map_size = 21
        c.model.anchor_pos_num = 8
        c.train.offset_range = 32
        c.train.batch_size = 4
        # 1500 steps (~30 min on 2 CPU cores): at 300 the demo's ROAM-tiny tracked worse than
        # the static box on the synthetic test split (AUC 0.111 vs 0.139); at 1500, 0.177.
        c.train.num_steps = 1500
        c.train.checkpoint_every_steps = 100
        c.train.log_every_steps = 10
        # Scales for a run of minutes: the random extractor's conv1_1 x 1/64 gives features
        # of about unit size; theta0 starts at unit scale (the official 1e-7 would leave the
        # model at zero for thousands of steps), lambda0 at 1e-2 (below); Adam 1e-3 on
        # theta0/lambda0.
        c.train.random_vgg_gain = 1 / 64
        c.model.theta_init_scale = 1.0
        # The LSTM starts near a good SGD step size: bias logit(0.01) = -4.595 (SGD at 0.01 is
        # the best rate on held-out clips of the 1,500-step run, benchmarks/roam_meta_eval.py;
        # the LSTM at init behaves like it), and meta-training refines per coordinate and step
        # (official -10: 4.5e-5; the earlier tiny -6 = 2.5e-3 was too cautious and Adam never
        # moved it: docs/roam.md).
        c.model.lstm_bias_init = math.log(0.01 / 0.99)
        c.train.meta_init_lr = 1e-3
        c.train.meta_opt_lr = 3e-3
        # Random Filter Scaling multiplies a coordinate's effective step by r^2: at the
        # official radii (1.6 / 1.3, r^2 up to 24x) the best constant rate on the tiny model is
        # 0.0067 and 0.018 already diverges on some clips, while tracking (r = 1) wants
        # 0.01-0.03 (measured, docs/roam.md). tiny keeps RFS at radii 0.5 / 0.4 (r^2 in
        # 0.37..2.7 / 0.45..2.2).
        c.train.rand_scale_radius_cf = 0.5
        c.train.rand_scale_radius_reg = 0.4
        # Memorisation: on 200 training sequences the meta-learned theta0 fitted the training
        # targets' colours, so the first-frame step (lambda0) and the LSTM were never needed
        # on training clips (tuned SGD chose no update) and theta0 fired on other objects of
        # held-out scenes. One random channel permutation/inversion per clip (48 variants)
        # makes the colours something the updates must pick up (docs/roam.md).
        c.train.colour_augment = True
        # lambda0 starts at 1e-2 (was 3e-3); with the augmentation it grew to 0.05-0.2 in the
        # 2,841-step run (docs/roam.md).
        c.model.meta_lr_init = 1e-2
        # Adam's beta2 0.99 on the LSTM group: with 0.999 the large, mixed-sign early
        # meta-gradients kept later steps tiny (the bias hardly moved; docs/roam.md).
        c.train.meta_opt_b2 = 0.99
        # An inner loop that diverges on a clip gives an inf meta-gradient: skip that batch.
        c.train.skip_nonfinite = True
        # Tracking: 50 lambda0 steps on the first frame's nine samples instead of the
        # official one. One step leaves the response peak cells away from the target on its
        # own samples; 50 bring synthetic *val* AUC from 0.177 to 0.192 (chosen over 1, 50,
        # 150 on val with the 2,841-step run; docs/roam.md).
        c.test.n_init_updates = 50
        c.data.datasets = ('synthetic',)
        c.data.min_track_length = 31
        c.data.samples_per_epoch = 400
        c.data.num_parallel_calls = 2
    return c
