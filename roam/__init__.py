"""ROAM (Yang et al., CVPR 2020) in JAX: a resizable tracking model updated by a learned,
coordinate-wise LSTM optimizer.

Modules: `vgg` (frozen VGG-16 to relu4_3, stride 4), `crop` (the official search crop),
`model` (filters warped to the target's aspect, labels, anchors, losses), `optim` (the learned
optimizer as optax transformations, Meta-SGD first step, Random Filter Scaling), `convert`
(official ROAM state_dict, MatConvNet and torchvision VGG-16 -> pytrees). docs/roam.md.
"""


# --- the tracker-package protocol (docs/architecture.md, "A tracker package") -----------------
# configs/roam.py sets config.package = 'roam'; the core finds these functions by that name
# (tracking.plugins). Heavy modules are imported inside each function. `make_tracker` is
# roam.tracker.ROAMTracker, the initialize/track adapter over the same jitted init/step.
# init_variables is the tracker's layout (`roam.convert.from_official`'s); the training task's
# own split of the same arrays (trained meta-parameters, frozen VGG) is roam.task's.

TRACKERS = ('roam',)


def tracker_fns(config, float64_state: bool = True):
    """ROAM's `tracking.api.TrackerFns` (`roam.functional.tracker_fns`)."""
    from roam.functional import tracker_fns as make
    return make(config, float64_state)


def make_tracker(config, variables, benchmark: str):
    """`roam.tracker.ROAMTracker(config, variables)` (the official tracker's values come from
    config.test, not from `benchmark`)."""
    del benchmark
    from roam.tracker import ROAMTracker
    return ROAMTracker(config, variables)


def tracker_variables(config, variables):
    """A restored checkpoint in the tracker's layout: a meta-training workdir's {'params':
    {theta0, lambda0, meta_opt}, 'vgg'} becomes {'vgg', 'theta0', 'lambda0', 'meta_opt'}
    (`roam.functional.tracker_variables`); anything else is returned as it is (a converted
    model; or another model's checkpoint, which the checkpoint check then names)."""
    del config
    if 'params' in variables and 'vgg' in variables:
        from roam.functional import tracker_variables as to_tracker
        return to_tracker(variables)
    return variables


def abstract_variables(config):
    """{'vgg', 'theta0', 'lambda0', 'meta_opt'} (the layout of `roam.convert.from_official`)
    with jax.ShapeDtypeStruct leaves, from the config's shapes (nothing initialised)."""
    import jax
    import numpy as np

    from roam.model import theta_shapes
    from roam.optim import CoordinatewiseLSTM
    from roam.vgg import LAYER_NAMES

    m = config.model
    vgg, fan_in = {}, 3
    for name, width in zip(LAYER_NAMES, tuple(m.vgg_channels)):
        vgg[name] = {'kernel': jax.ShapeDtypeStruct((3, 3, fan_in, width), np.float32),
                     'bias': jax.ShapeDtypeStruct((width,), np.float32)}
        fan_in = width
    theta = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(tuple(s), np.float32),
                                   theta_shapes(config), is_leaf=lambda x: isinstance(x, tuple))
    lstm = CoordinatewiseLSTM(m.lstm_hidden, m.lstm_layers, bias_init=m.lstm_bias_init)
    return {'vgg': vgg, 'theta0': theta, 'lambda0': theta,
            'meta_opt': jax.eval_shape(lstm.init, jax.random.PRNGKey(0))}


def init_variables(config, rng):
    """The untrained ROAM of `rng` (a PRNGKey): `roam.functional.init_variables`."""
    from roam.functional import init_variables as init
    return init(config, rng)


def make_task(config):
    """`roam.task.ROAMTask(config)`, the meta-training task."""
    from roam.task import ROAMTask
    return ROAMTask(config)


def from_official(state_dict, config):
    """The official ROAM state_dict -> {'vgg', 'theta0', 'lambda0', 'meta_opt'}
    (`roam.convert.from_official`)."""
    from roam.convert import from_official as convert
    return convert(state_dict, config)
