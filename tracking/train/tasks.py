"""The training task of a config: its tracker package's `make_task(config)`.

The package comes from config.package (tracking.plugins); the core lists no tasks and imports
no tracker package itself, so a new tracker trains without editing this file.
"""
from __future__ import annotations


def make_task(config):
    """config.package's make_task(config): the training task of config.tracker.

    Raises tracking.plugins.PluginError (a ValueError) naming config.package when the package
    cannot be imported, does not provide config.tracker, or defines no make_task.
    """
    from tracking import plugins
    return plugins.make_task(config)
