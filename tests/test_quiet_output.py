"""Quiet, readable output (tracking/logs.py): entry points print what the user needs and no
library chatter, our own warnings still show, and progress bars do not flood a pipe."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path


from helpers import write_square_otb
from tracking import logs

REPO = Path(__file__).resolve().parents[1]
NOISE = ('WARNING:tensorflow', 'DeprecationWarning', 'FutureWarning', 'orbax', 'absl::',
         'TF_ENABLE_ONEDNN_OPTS', 'rebuild TensorFlow', 'libtpu')


def test_eval_py_output_to_a_pipe_is_quiet(tmp_path):
    """eval.py with an orbax checkpoint (GRM tiny, untrained weights) on a 5-frame sequence."""
    from tracking.checkpoint import save_variables
    from tracking.config import load_config
    from tracking.variables import untrained_variables
    checkpoint = tmp_path / 'ckpt'
    save_variables(str(checkpoint), untrained_variables(load_config(
        str(REPO / 'configs/grm.py:tiny'))))
    root = write_square_otb(tmp_path / 'otb', 5)
    result = subprocess.run(
        [sys.executable, 'eval.py', '--config', 'configs/grm.py:tiny', '--checkpoint',
         str(checkpoint), '--benchmark', 'otb', '--root', str(root), '--out',
         str(tmp_path / 'out')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for noise in NOISE:
        assert noise not in output, (noise, output)
    assert '\r' not in output  # no live progress-bar refreshes in a pipe
    lines = output.splitlines()
    assert len(lines) <= 15, output
    # What the user needs is all there: the progress summary line, the table, the files.
    assert 'grm_tiny on otb: 1/1 seq in' in output
    assert 'grm_tiny ' in result.stdout and 'AUC' in result.stdout
    assert 'metrics: ' in result.stdout and 'plot: ' in result.stdout


QUIET_SCRIPT = textwrap.dedent('''
    import logging, sys, types, warnings
    from absl import logging as absl_logging
    from tracking.logs import quiet
    quiet()
    import tensorflow as tf
    tf.get_logger().warning('tf python warning')
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.use_absl_handler()
    # A record from a library file (site-packages), one from ours, one library warning.
    record = logging.LogRecord('absl', logging.INFO, '/x/site-packages/orbax/checkpoint/a.py', 1,
                               'library info', None, None)
    logging.getLogger('absl').handle(record)
    logging.getLogger('absl').handle(logging.LogRecord(
        'absl', logging.WARNING, '/x/site-packages/etils/a.py', 1, 'library warning',
        None, None))
    logging.getLogger('absl').handle(logging.LogRecord(
        'absl', logging.WARNING, '/x/site-packages/orbax/checkpoint/a.py', 1,
        'Given directory is read only', None, None))
    logging.getLogger('absl').handle(logging.LogRecord(
        'absl', logging.ERROR, '/x/site-packages/orbax/checkpoint/a.py', 1, 'orbax error',
        None, None))
    logging.getLogger('absl').handle(logging.LogRecord(
        'absl', logging.WARNING, '/x/site-packages/tensorflow_datasets/core/features/f.py', 72,
        '`FeatureConnector.dtype` is deprecated. Please change your code', None, None))
    absl_logging.info('our info')
    logging.getLogger('jax._src.xla_bridge').info('jax info')
    third_party = types.ModuleType('somelib')
    exec("import warnings\\ndef f():\\n    warnings.warn('lib deprecated', DeprecationWarning)\\n"
         "    warnings.warn('lib future', FutureWarning)", third_party.__dict__)
    third_party.f()
    ours = types.ModuleType('tracking.fake')
    exec("import warnings\\ndef f():\\n    warnings.warn('our deprecated', DeprecationWarning)\\n"
         "    warnings.warn('our user warning', UserWarning)", ours.__dict__)
    ours.f()
    print('done', file=sys.stderr)
''')


def test_quiet_silences_libraries_not_us():
    result = subprocess.run([sys.executable, '-c', QUIET_SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for expected in ('library warning', 'orbax error', 'our info', 'our deprecated',
                     'our user warning', 'done'):
        assert expected in output, (expected, output)
    for hidden in ('tf python warning', 'library info', 'jax info', 'lib deprecated',
                   'lib future', 'rebuild TensorFlow', 'FeatureConnector', 'read only'):
        assert hidden not in output, (hidden, output)


def test_progress_on_a_pipe_prints_one_line_at_the_end():
    stream = io.StringIO()  # not a terminal
    bar = logs.progress(total=5, initial=1, desc='train', unit='step', file=stream)
    for _ in range(4):
        bar.update(1)
    bar.set_postfix(loss='0.1234', refresh=False)
    assert stream.getvalue() == ''
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train: 5/5 step in ')
    assert lines[0].endswith('[loss=0.1234]')

    stream = io.StringIO()
    assert list(logs.progress(range(3), desc='seq', unit='frame', leave=False,
                              file=stream)) == [0, 1, 2]
    assert stream.getvalue() == ''  # leave=False: nothing at all
    assert list(logs.progress(range(3), desc='otb', unit='seq', file=stream)) == [0, 1, 2]
    assert stream.getvalue().startswith('otb: 3/3 seq in ')
    stream = io.StringIO()
    list(logs.progress(range(3), desc='off', enabled=False, file=stream))
    assert stream.getvalue() == ''
