"""Model variables for a tracker: restored from a checkpoint, or the untrained initialisation.

`untrained_variables(config)` is the "untrained" baseline of the demo's table and of
`eval.py --baseline untrained`: the config's model at the initialisation its seed gives
(its package's `init_variables(config, PRNGKey(config.seed))`, tracking.plugins; GRM and the
Siamese trackers also load the pretrained backbone when config.train.pretrained names one),
brought to host memory.
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def untrained_variables(config) -> dict[str, Any]:
    """{'params': ..., 'batch_stats': ...} as numpy arrays: the model of config.tracker at
    config.seed's initialisation. Deterministic in (config, config.seed)."""
    import jax

    from tracking import plugins
    return jax.device_get(plugins.init_variables(config, jax.random.PRNGKey(int(config.seed))))


def load_variables(config, checkpoint: str | None,
                   config_name: str | None = None) -> tuple[dict[str, Any], bool]:
    """(variables, trained): `checkpoint` (a converted-model folder or a training workdir)
    restored and checked against the model of `config`, or, when checkpoint is None/empty,
    `untrained_variables(config)` with a warning.

    Raises FileNotFoundError naming the folder when `checkpoint` does not exist, and ValueError
    naming the checkpoint and `config_name` (default '<tracker>:<variant>') when its variables
    do not fit the config's model (tracking.checkpoint.check_variables_match).
    """
    if checkpoint:
        from tracking.checkpoint import check_variables_match, restore_variables
        from tracking.tracker import expected_variables
        variables = restore_variables(checkpoint)
        expected = expected_variables(config)
        if expected is not None:
            from tracking import plugins
            variables = plugins.tracker_variables(config, variables)
            name = config_name or f'{config.tracker}:{config.get("variant", "")}'.rstrip(':')
            check_variables_match(variables, expected, checkpoint, name)
        return variables, True
    logger.warning('no checkpoint given: using the untrained %s model (seed %s); its boxes are '
                   'not meaningful', config.tracker, config.seed)
    return untrained_variables(config), False
