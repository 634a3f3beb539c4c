"""SiamRPN++ (pysot) in JAX/Flax: ResNet-50 atrous backbone, neck, depthwise RPN, tracker.

Inference only: `model.SiamRPN`, `convert.from_official` (pysot model.pth -> Flax variables),
`tracker_fns(config)` (the tracker as pure jittable functions, `siam.functional`) and its
adapter `tracker.SiamRPNTracker` reproduce the official pysot numbers
(see tests/test_siam_parity.py).
"""


def tracker_fns(config, float64_state: bool = True):
    """The `tracking.api.TrackerFns(init, step)` of the config's tracker: SiamAttn's
    (`siam.attn_functional.tracker_fns`) when config.model.arch == 'siamattn', else SiamRPN++'s
    (`siam.functional.tracker_fns`)."""
    if config.model.get('arch', None) == 'siamattn':
        from siam.attn_functional import tracker_fns as make_attn
        return make_attn(config, float64_state)
    from siam.functional import tracker_fns as make
    return make(config, float64_state)


# --- the tracker-package protocol (docs/architecture.md, "A tracker package") -----------------
# configs/siamrpn.py and configs/siamattn.py set config.package = 'siam'; the core finds these
# functions by that name (tracking.plugins). Heavy modules are imported inside each function.

TRACKERS = ('siamrpn', 'siamattn')


def make_tracker_fns(config, variables, benchmark: str):
    """(TrackerFns, variables prepared for them). SiamRPN++: `siam.functional.prepare_variables`
    (e.g. the Winograd kernels of test.conv_impl='winograd'); SiamAttn: the variables as they
    are. The hyper-parameters come from the config variant (VOT or OTB values), not from
    `benchmark`."""
    del benchmark
    if config.tracker == 'siamattn':
        return tracker_fns(config), variables
    from siam.functional import prepare_variables
    return tracker_fns(config), prepare_variables(config, variables)


def make_tracker(config, variables, benchmark: str):
    """The sequential tracker: `siam.tracker.SiamRPNTracker(config, variables)` for SiamRPN++,
    `siam.tracker.SiamAttnTracker` for SiamAttn (its `polygon` is what VOT records). Both run
    the same jitted step as `tracker_fns`."""
    del benchmark
    if config.tracker == 'siamattn':
        from siam.tracker import SiamAttnTracker
        return SiamAttnTracker(config, variables)
    from siam.tracker import SiamRPNTracker
    return SiamRPNTracker(config, variables)


def abstract_variables(config):
    """The variables of config.model (SiamAttn when model.arch is 'siamattn', else SiamRPN++)
    with jax.ShapeDtypeStruct leaves, nothing computed."""
    from siam import siamattn
    if siamattn.is_siamattn(config.model):
        return siamattn.variable_shapes(config.model)
    from siam.model import variable_shapes
    return variable_shapes(config.model)


def init_variables(config, rng):
    """The untrained model of `rng` (a PRNGKey): the training task's initialisation (random,
    then the pysot ImageNet backbone when config.train.pretrained names one)."""
    return make_task(config).init_variables(rng)


def make_task(config):
    """The training task: `siam.task.SiamRPNTask` ('siamrpn') or `siam.attn_task.SiamAttnTask`
    ('siamattn')."""
    if config.tracker == 'siamattn':
        from siam.attn_task import SiamAttnTask
        return SiamAttnTask(config)
    from siam.task import SiamRPNTask
    return SiamRPNTask(config)


def from_official(state_dict, config):
    """pysot model.pth state_dict -> Flax variables (`siam.convert.from_official`; CLI:
    python -m siam.convert IN.pth OUT_DIR --config configs/siamrpn.py:r50_l234)."""
    from siam.convert import from_official as convert
    return convert(state_dict, config)
