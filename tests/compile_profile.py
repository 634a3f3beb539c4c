"""pytest plugin: where each test's time goes, XLA compilation against the rest.

    PYTHONPATH=tests pytest -p compile_profile -n 2 --dist loadfile
    python tests/compile_profile.py        # the table, from the files the run wrote

Listens to JAX's duration events (jax.monitoring) and sums them per test: backend compilation
('/jax/core/compile/backend_compile_duration'), tracing and lowering; wall time per test
(setup + call + teardown). Each process (an xdist worker, or 'main') writes
<tempdir>/jax-tracking-compile-profile/<worker>.json at the end. Subprocesses a test starts are
not seen (their time shows only in the test's wall time). docs/testing.md, "Where the suite's
time goes", has a measured table.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

OUT = Path(tempfile.gettempdir()) / 'jax-tracking-compile-profile'
EVENTS = {'compile': '/jax/core/compile/backend_compile_duration',
          'trace': '/jax/core/compile/jaxpr_trace_duration',
          'lower': '/jax/core/compile/jaxpr_to_mlir_module_duration'}

_current: list = [None]
_seconds: dict = collections.defaultdict(lambda: collections.defaultdict(float))


def _listener(event: str, duration: float, **_) -> None:
    if _current[0] is not None:
        _seconds[_current[0]][event] += duration


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import jax.monitoring
    if not getattr(_listener, 'registered', False):
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _listener.registered = True
    _current[0] = item.nodeid
    start = time.perf_counter()
    yield
    _seconds[item.nodeid]['wall'] += time.perf_counter() - start
    _current[0] = None


def pytest_sessionfinish(session):
    if not _seconds:
        return
    OUT.mkdir(exist_ok=True)
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'main')
    (OUT / f'{worker}.json').write_text(json.dumps({k: dict(v) for k, v in _seconds.items()}))


def table(top: int = 25) -> str:
    """Per file and for the `top` slowest tests: wall, compile, trace and lower seconds."""
    tests = {}
    for path in sorted(OUT.glob('*.json')):
        tests.update(json.loads(path.read_text()))
    files = collections.defaultdict(lambda: collections.defaultdict(float))
    for nodeid, seconds in tests.items():
        for key, value in seconds.items():
            files[nodeid.split('::')[0]][key] += value

    def rows(items):
        for name, s in sorted(items, key=lambda kv: -kv[1].get('wall', 0.0))[:top]:
            yield (f"{s.get('wall', 0):7.1f} {s.get(EVENTS['compile'], 0):7.1f} "
                   f"{s.get(EVENTS['trace'], 0):6.1f} {s.get(EVENTS['lower'], 0):6.1f}  {name}")

    head = '   wall compile  trace  lower  (seconds)'
    total = sum(s.get('wall', 0.0) for s in tests.values())
    compile_total = sum(s.get(EVENTS['compile'], 0.0) for s in tests.values())
    return '\n'.join([f'{len(tests)} tests: {total:.0f} s of test time, {compile_total:.0f} s '
                      'of it XLA compilation', '', 'files:', head, *rows(files.items()), '',
                      'tests:', head, *rows(tests.items())])


if __name__ == '__main__':
    if not list(OUT.glob('*.json')):
        sys.exit(f'{OUT}: no profile; run pytest with -p compile_profile first')
    print(table())
