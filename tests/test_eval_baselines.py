"""eval.py --baseline untrained: the demo's "untrained" row (tracking.variables.untrained_variables,
which demo.py calls) for any config and benchmark."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers import write_square_otb
from tracking.config import load_config
from tracking.data.benchmarks import load_benchmark
from tracking.eval.results import read_boxes
from tracking.tracker import make_tracker, run_sequence
from tracking.variables import untrained_variables

REPO = Path(__file__).resolve().parents[1]


def _eval(*args):
    return subprocess.run([sys.executable, 'eval.py', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_untrained_baseline_is_the_seed_initialisation(tmp_path):
    root = write_square_otb(tmp_path / 'otb', 4)
    result = _eval('--baseline', 'untrained', '--config', 'configs/grm.py:tiny',
                   '--benchmark', 'otb', '--root', root, '--out', tmp_path / 'out', '--noprogress')
    assert result.returncode == 0, result.stderr
    assert 'grm_tiny_untrained' in result.stdout  # the row of the table, named as in the demo
    boxes = read_boxes(tmp_path / 'out' / 'results' / 'OTB100' / 'grm_tiny_untrained' /
                       'Square.txt')
    # The same boxes as the tracker built here from untrained_variables (what demo.py uses).
    config = load_config(str(REPO / 'configs/grm.py:tiny'))
    tracker = make_tracker(config, untrained_variables(config), 'otb')
    expected, _ = run_sequence(tracker, load_benchmark('otb', root)[0])
    np.testing.assert_allclose(boxes, expected, atol=1e-3)  # files keep 4 decimals


def test_untrained_baseline_flag_errors(tmp_path):
    root = write_square_otb(tmp_path / 'otb', 4)
    result = _eval('--baseline', 'untrained', '--benchmark', 'otb', '--root', root,
                   '--out', tmp_path / 'o')
    assert result.returncode != 0 and '--baseline untrained needs --config' in result.stderr
    result = _eval('--baseline', 'untrained', '--config', 'configs/grm.py:tiny',
                   '--checkpoint', tmp_path, '--benchmark', 'otb', '--root', root,
                   '--out', tmp_path / 'o')
    assert result.returncode != 0 and 'takes no --checkpoint' in result.stderr
