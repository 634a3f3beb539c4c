"""One switch for tests that need the shared reference material (../shared beside the checkout).

In a user's fresh clone without ../shared, such tests skip and say what is missing. CI sets
TRACKING_REQUIRE_SHARED=1 (.ci/run); then a missing path fails the test instead, and any other
skip fails too unless the test carries `@pytest.mark.allow_skip('why')`, so a parity test can
never pass CI by not running. See docs/testing.md.

Use:
    @pytest.mark.shared(PATH, ..., what='OTB Crossing')   # checked before the test runs
    def test_x(): ...

    def test_y(require_shared):                            # inside a test or fixture
        require_shared(PATH, ..., what='reference bundle')

This file must stay importable without the project's packages (tests/test_conftest.py copies it
into a temporary folder and runs pytest there).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_SHARED_ENV = 'TRACKING_REQUIRE_SHARED'
COMPILE_CACHE_ENV = 'TRACKING_TEST_COMPILE_CACHE'


def _use_compilation_cache() -> None:
    """Many test files (and the eval.py / train.py / track.py subprocesses they start) compile
    the same tiny-model programs; JAX's persistent compilation cache compiles each once. One
    cache folder per pytest-xdist worker (the subprocesses of a worker inherit it), so no two
    processes write one folder at the same time (JAX's cache locks only when eviction is on).
    The folder is tempdir/jax-tracking-tests-<uid>/<worker>; TRACKING_TEST_COMPILE_CACHE=0
    turns this off, and a JAX_COMPILATION_CACHE_DIR set before pytest starts is left alone.
    Every program is cached, not only those that took JAX's default 1 s to compile: the many
    small ones (eager ops, the CLIs' start-up) recur across tests and subprocesses (a subset
    of CLI and functional test files: 123-131 s instead of 135-143 s).
    Runs before any test module imports JAX (JAX reads these variables at import)."""
    if os.environ.get(COMPILE_CACHE_ENV, '1').strip().lower() in ('0', 'false', 'no'):
        return
    ours = os.environ.get('_TRACKING_TEST_CACHE_OWNED') == '1'
    if 'JAX_COMPILATION_CACHE_DIR' in os.environ and not ours:
        return
    import tempfile
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'main')
    root = Path(tempfile.gettempdir()) / f'jax-tracking-tests-{os.getuid()}'
    os.environ['JAX_COMPILATION_CACHE_DIR'] = str(root / worker)
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
    os.environ['_TRACKING_TEST_CACHE_OWNED'] = '1'


_use_compilation_cache()


def shared_required() -> bool:
    """True when TRACKING_REQUIRE_SHARED is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(REQUIRE_SHARED_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def check_shared(*paths, what: str) -> None:
    """Skips the running test (fails it under TRACKING_REQUIRE_SHARED=1) if a path is missing.

    paths: files or folders of the shared reference material; what: what the test needs them for,
    put in the message together with every missing path.
    """
    if not paths:
        raise TypeError('check_shared needs at least one path')
    missing = [str(p) for p in paths if not Path(p).exists()]
    if not missing:
        return
    reason = f'{what}: not found: {", ".join(missing)}'
    if shared_required():
        pytest.fail(f'{REQUIRE_SHARED_ENV}=1 and {reason}', pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope='session')
def require_shared():
    """check_shared as a fixture (any scope may use it): require_shared(*paths, what=...)."""
    return check_shared


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'shared(*paths, what): the test needs these shared paths (skip, or fail '
                   f'under {REQUIRE_SHARED_ENV}=1, when one is missing)')
    config.addinivalue_line(
        'markers', f'allow_skip(reason): this test may skip even under {REQUIRE_SHARED_ENV}=1')


def pytest_runtest_setup(item):
    for mark in item.iter_markers('shared'):
        check_shared(*mark.args, what=mark.kwargs.get('what', item.nodeid))


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under the switch, a skip (not an xfail) without allow_skip becomes a failure."""
    outcome = yield
    report = outcome.get_result()
    if (shared_required() and report.skipped and not hasattr(report, 'wasxfail')
            and item.get_closest_marker('allow_skip') is None):
        report.outcome = 'failed'
        report.longrepr = (f'{item.nodeid} skipped under {REQUIRE_SHARED_ENV}=1, where no test '
                           f'may skip without @pytest.mark.allow_skip: '
                           f'{_skip_reason(report.longrepr)}')


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under the switch, a module that skips at import (pytest.skip(allow_module_level=True),
    a module-level importorskip) is a collection error."""
    outcome = yield
    report = outcome.get_result()
    if shared_required() and report.skipped:
        report.outcome = 'failed'
        report.longrepr = (f'{collector.nodeid} skipped at collection under '
                           f'{REQUIRE_SHARED_ENV}=1: {_skip_reason(report.longrepr)}')
