"""`model_config_of`: the model section of a GRM config, frozen (hashable, usable as a jit cache
key). Its own module so the converter and the MAE loader read a config without importing the
Flax model (grm_jax.model imports mae, mae imports convert: this keeps that graph acyclic)."""
from __future__ import annotations

import ml_collections


def model_config_of(config) -> ml_collections.FrozenConfigDict:
    """The (frozen, hashable) model section of a full GRM config, or of a model config itself."""
    model = config.model if 'model' in config else config
    if isinstance(model, ml_collections.FrozenConfigDict):
        return model
    return ml_collections.FrozenConfigDict(model)
