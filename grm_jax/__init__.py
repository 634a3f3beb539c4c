"""GRM (Generalized Relation Modeling, CVPR 2023) in JAX/Flax.

A tracker package (docs/architecture.md, "A tracker package"): configs/grm.py sets
config.package = 'grm_jax' and config.tracker = 'grm', and the core finds the functions below by
that name (tracking.plugins). Every heavy module (JAX, Flax, the model) is imported inside the
function that needs it, so `import grm_jax` stays light.
"""

TRACKERS = ('grm',)


def tracker_fns(config, threshold=0.0):
    """GRM as `tracking.api.TrackerFns` (pure init/step on the device); see
    `grm_jax.functional.tracker_fns`. threshold: the division threshold (0 = argmax)."""
    from grm_jax.functional import tracker_fns as make
    return make(config, threshold)


def make_tracker_fns(config, variables, benchmark: str):
    """(TrackerFns, variables) with the division threshold of `benchmark`
    (config.test.thresholds, tracking.tracker.benchmark_threshold)."""
    from tracking.tracker import benchmark_threshold
    return tracker_fns(config, benchmark_threshold(config, benchmark)), variables


def make_tracker(config, variables, benchmark: str):
    """`grm_jax.tracker.GRMTracker` (initialize/track adapter over the same step) with the
    division threshold of `benchmark`."""
    from grm_jax.tracker import GRMTracker
    from tracking.tracker import benchmark_threshold
    return GRMTracker(config, variables, threshold=benchmark_threshold(config, benchmark))


def abstract_variables(config):
    """{'params', 'batch_stats'} of the config's GRM with jax.ShapeDtypeStruct leaves
    (jax.eval_shape of the initialisation: nothing is computed)."""
    import jax
    import jax.numpy as jnp

    from grm_jax.model import GRM, model_config_of
    cfg = model_config_of(config)
    template = jnp.zeros((1, cfg.template_size, cfg.template_size, 3), jnp.float32)
    search = jnp.zeros((1, cfg.search_size, cfg.search_size, 3), jnp.float32)
    return jax.eval_shape(lambda: GRM(cfg).init(jax.random.PRNGKey(0), template, search))


def init_variables(config, rng):
    """The untrained GRM of `rng` (a PRNGKey): the training task's initialisation, i.e. random,
    then the MAE encoder when config.train.pretrained names one."""
    return make_task(config).init_variables(rng)


def make_task(config):
    """`grm_jax.task.GRMTask(config)`, the training task."""
    from grm_jax.task import GRMTask
    return GRMTask(config)


def from_official(state_dict, config):
    """Official GRM state_dict -> Flax variables (`grm_jax.convert.from_official`; CLI:
    python -m grm_jax.convert IN.pth.tar OUT_DIR --config configs/grm.py:vitb_256)."""
    from grm_jax.convert import from_official as convert
    return convert(state_dict, config)


__all__ = ['TRACKERS', 'tracker_fns', 'make_tracker_fns', 'make_tracker', 'abstract_variables',
           'init_variables', 'make_task', 'from_official']
