"""The TRACKING_REQUIRE_SHARED switch of tests/conftest.py, run on a tiny test folder.

tests/conftest.py is copied into a temporary folder next to two small test files; pytest runs
there in a subprocess with the switch unset (a user's fresh clone: missing shared paths skip)
and set to 1 (CI: they fail, and so does every other skip that is not allow_skip).
"""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TINY_TESTS = '''
import pytest

MISSING = {missing!r}


@pytest.mark.shared(MISSING, what='marker check')
def test_marker():
    pass


def test_fixture(require_shared):
    require_shared(__file__, MISSING, what='fixture check')


def test_present(require_shared):
    require_shared(__file__, what='present check')


@pytest.mark.shared(__file__, what='present marker')
def test_present_marker():
    pass


def test_plain_skip():
    pytest.skip('a plain skip')


@pytest.mark.allow_skip('documented reason')
def test_allowed_skip():
    pytest.skip('an allowed skip')


@pytest.mark.xfail(reason='expected failure', strict=True)
def test_xfail():
    assert False
'''

MODULE_SKIP = '''
import pytest

pytest.importorskip('no_such_module_for_the_switch_test')


def test_never_collected():
    pass
'''


def _run(folder: Path, test_file: str, switch: str | None) -> tuple[int, dict, str]:
    """Runs pytest on folder/test_file; returns (exit code, {test name: outcome}, output)."""
    env = {k: v for k, v in os.environ.items() if k != 'TRACKING_REQUIRE_SHARED'}
    if switch is not None:
        env['TRACKING_REQUIRE_SHARED'] = switch
    report = folder / f'report_{test_file}_{switch}.xml'
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:cacheprovider', '-p', 'no:xdist',
         f'--junitxml={report}', test_file],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    outcomes = {}
    for case in ET.parse(report).getroot().iter('testcase'):
        kinds = [child.tag for child in case if child.tag in ('failure', 'error', 'skipped')]
        outcomes[case.get('name') or case.get('classname')] = kinds[0] if kinds else 'passed'
    return proc.returncode, outcomes, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('switch')
    shutil.copy(Path(__file__).with_name('conftest.py'), folder / 'conftest.py')
    (folder / 'pytest.ini').write_text('[pytest]\n')   # keep the repository's config out
    missing = folder / 'no_such_shared' / 'bundle.npz'
    (folder / 'test_tiny.py').write_text(TINY_TESTS.format(missing=str(missing)))
    (folder / 'test_module_skip.py').write_text(MODULE_SKIP)
    return folder, missing


def test_without_switch_missing_paths_skip_with_reason(tiny_folder):
    folder, missing = tiny_folder
    code, outcomes, out = _run(folder, 'test_tiny.py', None)
    assert code == 0, out
    assert outcomes == {
        'test_marker': 'skipped', 'test_fixture': 'skipped', 'test_present': 'passed',
        'test_present_marker': 'passed', 'test_plain_skip': 'skipped',
        'test_allowed_skip': 'skipped', 'test_xfail': 'skipped'}, out  # junit: xfail = skipped
    assert '2 passed, 4 skipped, 1 xfailed' in out, out
    assert f'marker check: not found: {missing}' in out, out
    assert f'fixture check: not found: {missing}' in out, out
    assert _run(folder, 'test_tiny.py', '0')[:2] == (code, outcomes)   # '0' is off as well
    code, outcomes, out = _run(folder, 'test_module_skip.py', None)
    assert code == 5, out                          # pytest's exit code for "no tests ran"
    assert outcomes == {'test_module_skip': 'skipped'}, out
    assert "could not import 'no_such_module_for_the_switch_test'" in out, out


def test_with_switch_every_unallowed_skip_fails(tiny_folder):
    folder, missing = tiny_folder
    code, outcomes, out = _run(folder, 'test_tiny.py', '1')
    assert code == 1, out
    assert outcomes == {
        'test_marker': 'error',          # failed in setup, by the marker
        'test_fixture': 'failure', 'test_present': 'passed', 'test_present_marker': 'passed',
        'test_plain_skip': 'failure', 'test_allowed_skip': 'skipped',
        'test_xfail': 'skipped'}, out
    assert f'TRACKING_REQUIRE_SHARED=1 and marker check: not found: {missing}' in out, out
    assert f'TRACKING_REQUIRE_SHARED=1 and fixture check: not found: {missing}' in out, out
    assert 'test_plain_skip skipped under TRACKING_REQUIRE_SHARED=1' in out, out
    assert 'a plain skip' in out, out
    code, outcomes, out = _run(folder, 'test_module_skip.py', '1')
    assert code == 2, out                          # interrupted by a collection error
    assert 'test_module_skip.py skipped at collection under TRACKING_REQUIRE_SHARED=1' in out, out
    assert "could not import 'no_such_module_for_the_switch_test'" in out, out
