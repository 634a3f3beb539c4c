"""Evaluates a tracker on a benchmark, or scores existing result files.

Run a tracker (results under <out>/results/<DS>/<tracker>/, then metrics, table and plots):
  python eval.py --config configs/grm.py:vitb_256 --checkpoint DIR --benchmark otb \
      --root /data/OTB100 --out /tmp/eval [--sequences Crossing,Girl] [--tracker_name NAME]
  python eval.py --baseline static --benchmark otb --root /data/OTB100 --out /tmp/eval
  python eval.py --baseline untrained --config configs/grm.py:tiny --benchmark otb \
      --root /data/OTB100 --out /tmp/eval      (the config's model at its seed's initialisation)

Score existing result folders of one or more trackers (plotted on one figure):
  python eval.py --benchmark otb --root /data/OTB100 --results runs/a/results/OTB100/grm \
      --results other/SiamRPN++ --out /tmp/compare

VOT (--benchmark vot, vot2016, vot2017, vot2018 or vot2019) runs the supervised reset protocol
and scores EAO / A / R; results in <out>/results/VOT2018/<tracker>/baseline/<seq>/<seq>_001.txt.
The year picks the EAO interval (plain vot: VOT2018's). --vot_protocol ope runs the same sequences
one-pass like OTB instead (results under results/VOT-OPE/).

Batched (--batch_sequences N): N sequences at once through the tracker's pure functions
(tracking.eval.batched: N slots refilled as sequences end, frames padded to a 64-px bucket, one
jitted vmapped step, frames decoded on host threads meanwhile); same result files, restart and
failure handling, same boxes (within 0.01 px) and metrics as the default one-at-a-time path:
  python eval.py --baseline untrained --config configs/grm.py:tiny --benchmark synthetic \
      --root /data/synthetic_test --out /tmp/eval --batch_sequences 8

Synthetic without TensorFlow: export a split once (needs TF), then --root that folder:
  python -m tracking.data.synthetic_folder --split test --out /data/synthetic_test
  (--benchmark synthetic with a --root that is not such a folder reads TFDS, which needs TF.)

Outputs: <out>/metrics.json, a printed table, <out>/<benchmark>_success.png and
_precision.png (not for the VOT reset protocol). Finished sequences are skipped on a restart.
A sequence that cannot be loaded (bad ground truth), run or scored is listed at the end with its
reason and the others are scored; the exit status is then 1. A command-line, config, root or
checkpoint problem is one `eval.py: error: ...` line, exit status 2.
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from tracking.data.benchmarks import BENCHMARKS
from tracking.eval import runner

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Tracker config, e.g. configs/grm.py:vitb_256 (omit to score --results).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Converted-model directory or training workdir (with --config).')
_BENCHMARK = flags.DEFINE_string(
    'benchmark', None, f'One of {", ".join(BENCHMARKS)}.')
_ROOT = flags.DEFINE_string(
    'root', '', 'Benchmark root folder (synthetic: TFDS data dir, empty for the default).')
_SEQUENCES = flags.DEFINE_list('sequences', None, 'Only these sequences (comma-separated).')
_SPLIT = flags.DEFINE_string(
    'split', None, 'Benchmark split (lasot test/all, got10k val/test, trackingnet test, '
    'synthetic train/val/test).')
_OUT = flags.DEFINE_string('out', None, 'Output folder.')
_TRACKER_NAME = flags.DEFINE_string(
    'tracker_name', None, 'Name of the result folder (default: <tracker>_<variant> or the '
    'baseline name).')
_RESULTS = flags.DEFINE_multi_string(
    'results', None, 'Existing result folder of one tracker (repeatable); scores instead of '
    'running. The tracker name is the folder basename.')
_BASELINE = flags.DEFINE_enum(
    'baseline', None, ['static', 'untrained'],
    'Run a baseline instead of a trained model: static = the first-frame box held fixed; '
    'untrained = the --config model at its seed\'s initialisation (no --checkpoint).')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show tqdm progress bars.')
_VOT_PROTOCOL = flags.DEFINE_enum(
    'vot_protocol', 'supervised', ['supervised', 'ope'],
    'VOT only: supervised = reset protocol scored EAO/A/R; ope = one-pass, scored like OTB.')
_BATCH_SEQUENCES = flags.DEFINE_integer(
    'batch_sequences', None, 'Run N >= 1 sequences at once through the tracker\'s jitted, '
    'vmapped step (continuous batching); default: one sequence at a time (the Tracker class).')
_EAO_CONVENTION = flags.DEFINE_enum(
    'eao_convention', 'pysot', ['pysot', 'vot-toolkit'],
    'VOT only: which curve entries the EAO interval [low, high] averages: pysot '
    'curve[low-1..high-1] (the published numbers), vot-toolkit curve[low..high].')


def _fail(message: str):
    """A command-line, config, data-root or checkpoint problem: one `eval.py: error: ...` line
    on stderr, exit status 2."""
    from tracking.config import usage_error
    usage_error('eval.py', message)


def _fail_sequences(failures) -> None:
    """Sequences that could not be loaded, run or scored: one line each, exit status 1."""
    lines = '\n  '.join(str(f) for f in failures)
    sys.exit(f'eval.py: {len(failures)} sequence(s) failed (the others were scored):\n  {lines}')


def _check_mode() -> str:
    """'score', 'baseline' or 'config', validating the flag combination."""
    modes = [name for name, given in (('score', bool(_RESULTS.value)),
                                      ('baseline', _BASELINE.value is not None),
                                      ('config', _CONFIG.value is not None)) if given]
    if _BASELINE.value == 'untrained':  # The baseline is the --config model, untrained.
        if _CONFIG.value is None:
            _fail('--baseline untrained needs --config (the model to initialise), e.g. '
                  '--config configs/grm.py:tiny')
        if _CHECKPOINT.value:
            _fail('--baseline untrained takes no --checkpoint (it is the model before training)')
        modes.remove('config')
    if len(modes) != 1:
        given = ', '.join('--results' if m == 'score' else '--' + m for m in modes) or 'none'
        _fail('give exactly one of --config (with --checkpoint), --baseline or --results '
              f'(got: {given})')
    if modes[0] == 'config' and not _CHECKPOINT.value:
        _fail('--config needs --checkpoint DIR (a converted model or a training workdir)')
    if not _OUT.value:
        _fail('--out DIR is required')
    for folder in _RESULTS.value or ():
        if not os.path.isdir(folder):
            _fail(f'--results folder not found: {folder}')
    return modes[0]


def _load_sequences(benchmark: str):
    """[(name, loader)]: each sequence is loaded later, inside the runner's per-sequence failure
    handling (one bad annotation file fails only its sequence)."""
    from tracking.data.benchmarks import benchmark_entries
    from tracking.data.synthetic_folder import is_synthetic_folder, synthetic_folder_entries
    root = _ROOT.value or None
    if benchmark == 'synthetic' and is_synthetic_folder(root):  # exported frames: no TF
        return synthetic_folder_entries(root, _SEQUENCES.value or None)
    if root is None and benchmark != 'synthetic':
        _fail(f'--root is required for benchmark {benchmark}')
    return benchmark_entries(benchmark, root, _SEQUENCES.value or None, _SPLIT.value)


def _tracker_factory(mode: str, benchmark: str):
    """(tracker name, () -> Tracker, () -> (TrackerFns, variables))."""
    from tracking import tracker as tracker_lib
    if mode == 'baseline' and _BASELINE.value == 'static':
        return (_TRACKER_NAME.value or _BASELINE.value, tracker_lib.StaticTracker,
                lambda: tracker_lib.make_tracker_fns(None, None, benchmark))
    config = _CONFIG.value
    name = _TRACKER_NAME.value or (f'{config.tracker}_{config.variant}' if 'variant' in config
                                   else config.tracker)
    if mode == 'baseline':  # untrained, named like demo.py's row
        from tracking.variables import untrained_variables
        variables = untrained_variables(config)
        name = _TRACKER_NAME.value or f'{name}_untrained'
        return (name, lambda: tracker_lib.make_tracker(config, variables, benchmark),
                lambda: tracker_lib.make_tracker_fns(config, variables, benchmark))

    from tracking.variables import load_variables
    try:  # Restored and checked once, before any sequence runs.
        variables, _ = load_variables(config, _CHECKPOINT.value, _config_name(config))
    except (FileNotFoundError, ValueError) as e:
        _fail(f'cannot load --checkpoint: {e}')
    return (name, lambda: tracker_lib.make_tracker(config, variables, benchmark),
            lambda: tracker_lib.make_tracker_fns(config, variables, benchmark))


def _config_name(config) -> str:
    """The --config argument as given (file[:variant]), else '<tracker>:<variant>'."""
    for arg in sys.argv[1:]:
        if arg.startswith('--config='):
            return arg.split('=', 1)[1]
    if '--config' in sys.argv[:-1]:
        return sys.argv[sys.argv.index('--config') + 1]
    return f'{config.tracker}:{config.get("variant", "")}'


def _protocol(benchmark: str) -> str:
    """The name the runner gets: the VOT year as given ('vot2016'), 'vot-ope', or `benchmark`."""
    if benchmark != 'vot':
        return benchmark
    if _VOT_PROTOCOL.value == 'ope':
        return runner.VOT_OPE
    name = _BENCHMARK.value.lower().replace('-', '').replace('_', '')
    from tracking.eval import vot
    try:
        vot.eao_interval(name)
    except ValueError as e:
        _fail(f'{e} (use --vot_protocol ope to score it one-pass)')
    return name


def _report(benchmark: str, per_sequence: dict, summaries: dict) -> None:
    from tracking.eval import plots, report
    out = _OUT.value
    json_path = report.write_metrics_json(os.path.join(out, 'metrics.json'), per_sequence,
                                          summaries)
    print(report.format_table(summaries, benchmark))
    print(f'metrics: {json_path}')
    if runner.is_vot_supervised(benchmark):
        return
    written = plots.plot_success_precision(summaries, os.path.join(out, benchmark),
                                           runner.result_folder(benchmark))
    for path in written:
        print(f'plot: {path}')


def main(argv):
    if len(argv) > 1:
        _fail(f'unexpected arguments {argv[1:]}')
    if not _BENCHMARK.value:
        _fail(f'--benchmark is required; known benchmarks: {", ".join(BENCHMARKS)}')
    try:
        benchmark = runner.canonical_benchmark(_BENCHMARK.value)
    except ValueError as e:
        _fail(str(e))
    mode = _check_mode()
    if _BATCH_SEQUENCES.value is not None:
        if _BATCH_SEQUENCES.value < 1:
            _fail(f'--batch_sequences must be >= 1, got {_BATCH_SEQUENCES.value}')
        if mode == 'score':
            _fail('--batch_sequences runs a tracker; it does not apply to --results')
    logging.getLogger('tracking').setLevel(logging.INFO)
    protocol = _protocol(benchmark)
    try:
        sequences = _load_sequences(benchmark)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))
    if not sequences:
        _fail(f'no sequences found for {benchmark} under {_ROOT.value!r}')

    if mode == 'score':
        load_failures = []
        scored = runner.score_results(_RESULTS.value, sequences, protocol,
                                      eao_convention=_EAO_CONVENTION.value,
                                      load_failures=load_failures)
        if not scored:
            if load_failures:
                _fail_sequences(load_failures)
            _fail('none of the --results folders could be scored (see the log above)')
        per_sequence = {name: p for name, (p, _) in scored.items()}
        summaries = {name: s for name, (_, s) in scored.items()}
        _report(protocol, per_sequence, summaries)
        if load_failures:
            _fail_sequences(load_failures)
        return

    tracker_name, factory, fns_factory = _tracker_factory(mode, benchmark)
    results_dir = os.path.join(_OUT.value, 'results', runner.result_folder(protocol))
    per_sequence, summary, failures = runner.evaluate_tracker(
        factory, sequences, protocol, results_dir, tracker_name, progress=_PROGRESS.value,
        eao_convention=_EAO_CONVENTION.value, batch_sequences=_BATCH_SEQUENCES.value,
        fns_factory=fns_factory)
    print(f'results: {os.path.join(results_dir, tracker_name)}')
    if summary is not None:
        _report(protocol, {tracker_name: per_sequence}, {tracker_name: summary})
    elif benchmark in runner.SUBMISSION_SERVERS:
        print(f'{benchmark}: no public ground truth; submit the results in {results_dir} to '
              f'{runner.SUBMISSION_SERVERS[benchmark]}')
    if failures:
        _fail_sequences(failures)


if __name__ == '__main__':
    from tracking.logs import quiet
    quiet()
    from tracking.config import parse_flags_or_exit
    app.run(main, flags_parser=parse_flags_or_exit)
