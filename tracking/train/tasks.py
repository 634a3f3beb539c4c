"""Registry of training tasks: config.tracker -> the tracker package's task class.

Tasks are imported only when used, so `make_task` does not pull in every model.
"""
from __future__ import annotations

import importlib

# config.tracker -> 'module:ClassName' of the training task.
TASKS = {
    'grm': 'grm_jax.task:GRMTask',
    'siamrpn': 'siam.task:SiamRPNTask',
}


def make_task(config):
    """The training task named by config.tracker (ValueError listing the known ones)."""
    if config.tracker not in TASKS:
        raise ValueError(f'no training task for tracker {config.tracker!r}; known: {sorted(TASKS)}')
    module_name, _, class_name = TASKS[config.tracker].partition(':')
    return getattr(importlib.import_module(module_name), class_name)(config)
