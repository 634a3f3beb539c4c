"""GRM (Generalized Relation Modeling, CVPR 2023) in JAX/Flax."""


def tracker_fns(config, threshold=0.0):
    """GRM as `tracking.api.TrackerFns` (pure init/step on the device); see
    `grm_jax.functional.tracker_fns`. Imported lazily so `import grm_jax` stays light."""
    from grm_jax.functional import tracker_fns as make
    return make(config, threshold)


__all__ = ['tracker_fns']
