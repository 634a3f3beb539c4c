"""Trackers found by name (tracking/plugins.py): the core imports the package config.package
names and never a tracker package of its own; the GRM modules import without a cycle."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_collections
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tracking import plugins  # noqa: E402

TRACKER_PACKAGES = ('grm_jax', 'siam', 'roam')
CORE_SCRIPTS = ('eval.py', 'train.py', 'demo.py', 'track.py')


def _core_files() -> list[Path]:
    return sorted((REPO / 'tracking').rglob('*.py')) + [REPO / s for s in CORE_SCRIPTS]


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import statement at any depth, and of importlib.import_module /
    __import__ calls with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, 'attr', getattr(node.func, 'id', '')) in (
                  'import_module', '__import__')):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_tracker_package(module: str) -> bool:
    return module.split('.')[0].split(':')[0] in TRACKER_PACKAGES


# --- the core names no tracker package -----------------------------------------------------------

def test_core_source_names_no_tracker_package():
    """No import (module level or lazy), import_module('...') or 'pkg.module:Name' registry
    string of grm_jax / siam / roam in tracking/ or the command-line scripts."""
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), str(path))
        for line, module in _imported_modules(tree):
            if _is_tracker_package(module):
                offenders.append(f'{path.relative_to(REPO)}:{line}: imports {module}')
        for node in ast.walk(tree):  # a registry of 'grm_jax.task:GRMTask'-like strings
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _is_tracker_package(node.value) and ':' in node.value):
                offenders.append(f'{path.relative_to(REPO)}:{node.lineno}: {node.value!r}')
    assert not offenders, '\n'.join(offenders)


def test_static_check_sees_a_tracker_import(tmp_path):
    """The check above can fail: it finds a lazy import and a registry string."""
    tree = ast.parse('def f():\n    from siam.tracker import X\nT = {"g": "grm_jax.task:T"}\n')
    assert [m for _, m in _imported_modules(tree)] == ['siam.tracker']
    assert _is_tracker_package('grm_jax.task:T') and not _is_tracker_package('tracking.api')


def test_importing_the_core_imports_no_tracker_package():
    """Every tracking.* module imported in a fresh interpreter: no tracker package in
    sys.modules afterwards; then resolving configs/grm.py by name does import grm_jax."""
    code = textwrap.dedent('''
        import importlib, pkgutil, sys
        import tracking
        names = [m.name for m in pkgutil.walk_packages(tracking.__path__, 'tracking.')]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('grm_jax', 'siam', 'roam'))
        print(len(names), 'modules;', 'tracker packages:', loaded)
        from tracking.config import load_config
        from tracking import plugins
        plugins.tracker_package(load_config('configs/grm.py:tiny'))
        print('after lookup:', 'grm_jax' in sys.modules, 'siam' in sys.modules)
    ''')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    count = int(lines[-2].split()[0])
    assert count >= 30, lines                          # it really imported the core
    assert lines[-2].endswith('tracker packages: []'), lines
    assert lines[-1] == 'after lookup: True False', lines


# --- a package found by name ---------------------------------------------------------------------

TOY_PACKAGE = '''
"""A toy tracker package: moves the box by variables['params']['dx'] pixels per frame."""
import numpy as np

TRACKERS = ('toy', 'toy_fast')
calls = []


def tracker_fns(config):
    import jax.numpy as jnp
    from tracking.api import TrackerFns

    def init(variables, frame, frame_hw, box_xywh):
        return jnp.asarray(box_xywh, jnp.float32)

    def step(variables, state, frame, frame_hw):
        state = state + jnp.array([1.0, 0.0, 0.0, 0.0]) * variables['params']['dx']
        return state, {'box': state, 'score': jnp.ones((), jnp.float32)}

    return TrackerFns(init, step)


class ToyTracker:
    def __init__(self, config, variables, benchmark):
        self.dx, self.benchmark, self.box = float(variables['params']['dx']), benchmark, None

    def initialize(self, frame, box_xywh):
        self.box = np.asarray(box_xywh, np.float64)

    def track(self, frame):
        self.box = self.box + [self.dx, 0, 0, 0]
        return self.box


def make_tracker(config, variables, benchmark):
    calls.append(('make_tracker', config.tracker, benchmark))
    return ToyTracker(config, variables, benchmark)


def abstract_variables(config):
    import jax
    return {'params': {'dx': jax.ShapeDtypeStruct((), np.float32)}}


def init_variables(config, rng):
    import jax
    return {'params': {'dx': jax.random.uniform(rng, (), minval=1.0, maxval=2.0)}}


class ToyTask:
    def __init__(self, config):
        self.config = config

    def init_variables(self, rng):
        return init_variables(self.config, rng)


def make_task(config):
    return ToyTask(config)


def from_official(state_dict, config):
    return {'params': {'dx': np.float32(state_dict['dx'])}}
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A tracker package written into tmp_path (on sys.path) as `toy_tracker_pkg_a1`."""
    name = 'toy_tracker_pkg_a1'
    (tmp_path / name).mkdir()
    (tmp_path / name / '__init__.py').write_text(TOY_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def _config(package: str, tracker: str = 'toy'):
    return ml_collections.ConfigDict(dict(tracker=tracker, package=package, seed=5))


def test_fake_package_is_found_by_name(toy_package):
    import jax

    from tracking.api import track_video
    from tracking.data.sequence import Sequence
    from tracking.tracker import expected_variables, make_tracker, make_tracker_fns, run_sequence
    from tracking.train.tasks import make_task
    from tracking.variables import untrained_variables

    config = _config(toy_package)
    assert toy_package not in sys.modules
    variables = {'params': {'dx': np.float32(3.0)}}

    tracker = make_tracker(config, variables, 'otb')      # the sequential path
    package = sys.modules[toy_package]
    assert type(tracker).__name__ == 'ToyTracker' and tracker.benchmark == 'otb'
    assert package.calls == [('make_tracker', 'toy', 'otb')]
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    sequence = Sequence('s', frames, np.tile(np.float32([1, 2, 3, 4]), (4, 1)))
    boxes, _ = run_sequence(tracker, sequence)
    np.testing.assert_allclose(boxes[:, 0], [1, 4, 7, 10])

    fns, fn_variables = make_tracker_fns(config, variables, 'otb')  # no make_tracker_fns:
    assert fn_variables is variables                                # tracker_fns + variables
    fn_boxes, _ = track_video(fns, fn_variables, frames, np.int32([8, 8]), boxes[0])
    np.testing.assert_allclose(np.asarray(fn_boxes), boxes, atol=1e-6)

    expected = expected_variables(config)
    assert expected['params']['dx'].shape == ()
    untrained = untrained_variables(config)                         # init_variables(seed 5)
    key = jax.random.PRNGKey(5)
    assert float(untrained['params']['dx']) == float(package.init_variables(config, key)
                                                     ['params']['dx'])
    assert type(make_task(config)).__name__ == 'ToyTask'
    assert plugins.from_official({'dx': 2.5}, config) == {'params': {'dx': 2.5}}
    config.tracker = 'toy_fast'                                     # a second name, same package
    assert make_tracker(config, variables, 'lasot').benchmark == 'lasot'


def test_package_without_make_tracker_runs_its_functions(toy_package, monkeypatch):
    """make_tracker is optional: the core adapts tracker_fns (FunctionalTracker), same boxes."""
    from tracking.data.sequence import Sequence
    from tracking.tracker import FunctionalTracker, make_tracker, run_sequence

    config = _config(toy_package)
    variables = {'params': {'dx': np.float32(2.5)}}
    plugins.tracker_package(config)
    monkeypatch.delattr(sys.modules[toy_package], 'make_tracker')
    tracker = make_tracker(config, variables, 'otb')
    assert isinstance(tracker, FunctionalTracker)
    frames = np.zeros((3, 6, 7, 3), np.uint8)
    sequence = Sequence('s', frames, np.tile(np.float32([1, 2, 3, 4]), (3, 1)))
    boxes, _ = run_sequence(tracker, sequence)
    np.testing.assert_allclose(boxes[:, 0], [1, 3.5, 6])
    assert tracker.score == 1.0
    with pytest.raises(ValueError, match=r'frame must be \[H, W, 3\] uint8 RGB'):
        tracker.track(np.zeros((6, 7), np.uint8))


def test_roam_abstract_variables_match_its_initialisation():
    """roam.abstract_variables (built from shapes) == the tree init_variables returns (tiny)."""
    import jax

    from tracking.config import load_config
    config = load_config(str(REPO / 'configs/roam.py:tiny'))
    spec = lambda tree: jax.tree_util.tree_map(lambda x: (x.shape, np.dtype(x.dtype)), tree)  # noqa
    assert spec(plugins.abstract_variables(config)) == spec(
        plugins.init_variables(config, jax.random.PRNGKey(0)))


def test_static_baseline_needs_no_package():
    from tracking.tracker import StaticTracker, expected_variables, make_tracker, make_tracker_fns
    config = ml_collections.ConfigDict(dict(tracker='static'))
    assert isinstance(make_tracker(config, None, 'otb'), StaticTracker)
    assert expected_variables(config) is None and expected_variables(None) is None
    fns, variables = make_tracker_fns(None, None, 'otb')
    state = fns.init(None, None, None, np.float32([1, 2, 3, 4]))
    np.testing.assert_array_equal(fns.step(None, state, None, None)[1]['box'], [1, 2, 3, 4])


def test_errors_name_the_config_key_and_the_package(toy_package, tmp_path):
    from tracking.tracker import make_tracker
    from tracking.train.tasks import make_task

    no_field = ml_collections.ConfigDict(dict(tracker='toy'))
    with pytest.raises(ValueError, match=r"config has no 'package' field \(tracker 'toy'\)"):
        make_tracker(no_field, None, 'otb')
    with pytest.raises(ValueError, match=r"config.package = 'no_such_pkg_zz9': tracker package "
                                         r"'no_such_pkg_zz9' is not installed or not on sys.path"):
        make_task(_config('no_such_pkg_zz9'))
    with pytest.raises(ValueError, match=r"unknown tracker 'nope' \(config.tracker\) in tracker "
                                         rf"package '{toy_package}' \(config.package\); "
                                         r"known: \['toy', 'toy_fast'\]"):
        make_tracker(_config(toy_package, 'nope'), None, 'otb')

    (tmp_path / 'toy_partial_pkg_a1.py').write_text("TRACKERS = ('toy',)\n")  # no functions
    with pytest.raises(ValueError, match=r"tracker package 'toy_partial_pkg_a1' \(config.package\) "
                                         r'does not define make_task\(\), which training'):
        make_task(_config('toy_partial_pkg_a1'))
    (tmp_path / 'toy_untagged_pkg_a1.py').write_text('def make_task(config):\n    return 1\n')
    with pytest.raises(ValueError, match=r"'toy_untagged_pkg_a1' does not define TRACKERS"):
        make_task(_config('toy_untagged_pkg_a1'))
    (tmp_path / 'toy_broken_pkg_a1.py').write_text('import no_such_dependency_zz9\n')
    with pytest.raises(ValueError, match=r"tracker package 'toy_broken_pkg_a1' failed to import "
                                         r"\(ModuleNotFoundError: No module named "
                                         r"'no_such_dependency_zz9'\)"):
        make_task(_config('toy_broken_pkg_a1'))
    for name in ('toy_partial_pkg_a1', 'toy_untagged_pkg_a1', 'toy_broken_pkg_a1'):
        sys.modules.pop(name, None)


@pytest.mark.parametrize('config_file', sorted(p.name for p in (REPO / 'configs').glob('*.py')))
def test_every_config_names_a_package_that_has_the_protocol(config_file):
    """configs/*.py: config.package imports, lists config.tracker and defines every protocol
    name (documented in docs/architecture.md, "A tracker package")."""
    from tracking.config import load_config
    config = load_config(str(REPO / 'configs' / config_file))
    package = plugins.tracker_package(config)
    missing = [n for n in plugins.PROTOCOL if not hasattr(package, n)]
    assert not missing, f'{config_file}: package {config.package!r} lacks {missing}'
    doc = (REPO / 'docs' / 'architecture.md').read_text()
    for name in plugins.PROTOCOL + plugins.OPTIONAL:
        assert f'`{name}' in doc, name


def test_grm_and_siamrpn_abstract_variables_from_their_packages():
    from tracking.config import load_config
    from tracking.tracker import expected_variables
    grm = expected_variables(load_config(str(REPO / 'configs/grm.py:tiny')))
    siam = expected_variables(load_config(str(REPO / 'configs/siamrpn.py:tiny')))
    assert set(grm) >= {'params'} and set(siam) >= {'params', 'batch_stats'}
    assert 'backbone' in grm['params'] and grm['params']['backbone']['pos_embed_x'].ndim == 3


# --- grm_jax: no import cycle ---------------------------------------------------------------------

def _grm_import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((REPO / 'grm_jax').glob('*.py')):
        module = 'grm_jax' if path.stem == '__init__' else f'grm_jax.{path.stem}'
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == 'grm_jax':
                deps |= {f'grm_jax.{a.name}' for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('grm_jax.'):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith('grm_jax.')}
        graph[module] = deps - {module, 'grm_jax'}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_grm_modules_import_without_a_cycle():
    """Every import in grm_jax/*.py (module level and inside functions) forms an acyclic graph;
    the cycle finder itself finds the old convert -> model -> mae -> convert cycle."""
    graph = _grm_import_graph()
    assert {'grm_jax.convert', 'grm_jax.model', 'grm_jax.mae'} <= set(graph)
    assert _cycle(graph) is None, _cycle(graph)
    old = {'grm_jax.convert': {'grm_jax.model'}, 'grm_jax.model': {'grm_jax.mae'},
           'grm_jax.mae': {'grm_jax.convert'}}
    assert _cycle(old) == ['grm_jax.convert', 'grm_jax.model', 'grm_jax.mae', 'grm_jax.convert']


@pytest.mark.parametrize('module', ['grm_jax.convert', 'grm_jax.mae'])
def test_grm_converter_modules_import_alone(module):
    """Each in a fresh interpreter; neither pulls in the Flax model."""
    code = (f'import sys, {module}; '
            "print('grm_jax.model' in sys.modules, 'flax' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['False', 'False'], out.stdout
