"""Tracker packages found by name: the core imports the package a config names, never a fixed one.

A config names its tracker package (`config.package`, e.g. 'grm_jax', 'siam', 'roam') beside the
tracker's name within it (`config.tracker`, e.g. 'grm', 'siamrpn', 'siamattn'). The package is
imported with `importlib.import_module(config.package)` (any importable module works: an installed
package, a folder on sys.path, or `__main__`) and provides plain module-level functions in its
`__init__.py` (docs/architecture.md, "A tracker package"):

    TRACKERS                                   tuple of the config.tracker names it provides
    tracker_fns(config)                        -> tracking.api.TrackerFns
    abstract_variables(config)                 -> the variables tree, jax.ShapeDtypeStruct leaves
    init_variables(config, rng)                -> the untrained variables (rng: a PRNGKey)
    make_task(config)                          -> the training task (docs/architecture.md)
    from_official(state_dict, config)          -> variables converted from the official checkpoint
  optional:
    make_tracker_fns(config, variables, benchmark) -> (TrackerFns, variables prepared for them);
        without it, (tracker_fns(config), variables).
    make_tracker(config, variables, benchmark) -> a tracking.tracker.Tracker (sequential path);
        without it, tracking.tracker.FunctionalTracker over make_tracker_fns.
    tracker_variables(config, variables)       -> a restored checkpoint's variables in the layout
        abstract_variables describes (for a package whose training state keeps them in another
        layout, e.g. ROAM's {'params': meta-parameters, 'vgg'}); without it, unchanged.

This module imports no tracker package itself; `tracker_package` is the one place that does.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

# Every name a tracker package defines (docs/architecture.md, "A tracker package").
PROTOCOL = ('TRACKERS', 'tracker_fns', 'abstract_variables', 'init_variables', 'make_task',
            'from_official')
OPTIONAL = ('make_tracker_fns', 'make_tracker', 'tracker_variables')


class PluginError(ValueError):
    """A config's tracker package cannot be imported, lacks a protocol name, or does not provide
    the config's tracker. A ValueError, so command lines report it as a configuration error."""


def package_name(config) -> str:
    """config.package (a non-empty string), or PluginError naming the config key."""
    tracker = config.get('tracker', '?') if hasattr(config, 'get') else '?'
    if 'package' not in config:
        raise PluginError(f"config has no 'package' field (tracker {tracker!r}): set "
                          "config.package to the tracker package to import, e.g. 'grm_jax' or "
                          "'siam'")
    name = config.package
    if not isinstance(name, str) or not name:
        raise PluginError(f'config.package = {name!r} (tracker {tracker!r}) must name a package, '
                          "e.g. 'grm_jax'")
    return name


def tracker_package(config) -> ModuleType:
    """The module named by config.package, imported; checks it provides config.tracker.

    Raises PluginError naming config.package and the package when the package cannot be imported
    (the import error is chained), has no TRACKERS, or TRACKERS lacks config.tracker.
    """
    name = package_name(config)
    try:
        package = importlib.import_module(name)
    except ImportError as e:
        missing = getattr(e, 'name', None)
        what = ('is not installed or not on sys.path' if missing == name
                else f'failed to import ({type(e).__name__}: {e})')
        raise PluginError(f'config.package = {name!r}: tracker package {name!r} {what}') from e
    trackers = getattr(package, 'TRACKERS', None)
    if trackers is None:
        raise PluginError(f'config.package = {name!r}: tracker package {name!r} does not define '
                          f'TRACKERS (the config.tracker names it provides; docs/architecture.md, '
                          f'"A tracker package")')
    tracker = config.get('tracker', None)
    if tracker not in tuple(trackers):
        raise PluginError(f'unknown tracker {tracker!r} (config.tracker) in tracker package '
                          f'{name!r} (config.package); known: {sorted(trackers)}')
    return package


def package_function(config, function: str) -> Callable[..., Any]:
    """`config.package`'s module-level `function`, or PluginError naming the package and the
    function (and what it is for) when the package does not define it."""
    package = tracker_package(config)
    fn = getattr(package, function, None)
    if not callable(fn):
        raise PluginError(f'tracker package {package.__name__!r} (config.package) does not define '
                          f'{function}(), which {_PURPOSE.get(function, "the caller")} needs; '
                          f'see docs/architecture.md, "A tracker package"')
    return fn


_PURPOSE = {
    'tracker_fns': 'the functional tracker (batched evaluation)',
    'make_tracker': 'the sequential tracker (eval.py, track.py, demo.py)',
    'abstract_variables': 'the checkpoint check',
    'init_variables': 'the untrained baseline',
    'make_task': 'training (train.py)',
    'from_official': 'the official-checkpoint converter',
}


def make_tracker(config, variables, benchmark: str):
    """config's package's make_tracker(config, variables, benchmark)."""
    return package_function(config, 'make_tracker')(config, variables, benchmark)


def make_tracker_fns(config, variables, benchmark: str):
    """(TrackerFns, variables for them): the package's make_tracker_fns when it has one, else
    (tracker_fns(config), variables)."""
    package = tracker_package(config)
    if callable(getattr(package, 'make_tracker_fns', None)):
        return package.make_tracker_fns(config, variables, benchmark)
    return package_function(config, 'tracker_fns')(config), variables


def tracker_variables(config, variables):
    """`variables` restored from a checkpoint (a converted model or a training workdir) in the
    layout config's tracker needs: the package's tracker_variables when it has one, else as
    they are."""
    package = tracker_package(config)
    if callable(getattr(package, 'tracker_variables', None)):
        return package.tracker_variables(config, variables)
    return variables


def abstract_variables(config):
    """The variables tree config's tracker needs (jax.ShapeDtypeStruct leaves; nothing computed)."""
    return package_function(config, 'abstract_variables')(config)


def init_variables(config, rng):
    """The untrained variables of config's tracker from the PRNGKey `rng`."""
    return package_function(config, 'init_variables')(config, rng)


def make_task(config):
    """The training task of config's tracker (docs/architecture.md, "A training task")."""
    return package_function(config, 'make_task')(config)


def from_official(state_dict, config):
    """Variables converted by config's package from an official checkpoint's state_dict."""
    return package_function(config, 'from_official')(state_dict, config)
