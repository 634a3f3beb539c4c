"""The demo: train a tiny tracker on the embedded synthetic dataset, then compare it with baselines.

    python demo.py --workdir work/demo                                   (`make demo`: GRM)
    python demo.py --config configs/siamrpn.py:tiny --workdir work/demo_siamrpn   (`make demo-siamrpn`)

1. Builds the synthetic TFDS dataset (first run only) and trains the config (default
   `configs/grm.py:tiny`) on its train split (checkpoints in <workdir>/train; a restart resumes).
2. Evaluates three trackers on the held-out synthetic test split, and on the real sequences in
   ../shared/data/sequences when present (the VOT sequence both one-pass and with VOT's reset
   protocol): the trained model, the same model untrained (its random initialisation), and a
   static box (the first-frame box held fixed).
3. Prints one metrics table per benchmark and writes success/precision plots (PNG) and
   metrics.json into <workdir>/<benchmark>/.
"""
from __future__ import annotations

import logging
from pathlib import Path

from absl import app
from absl import flags

flags.DEFINE_string('workdir', 'work/demo', 'Where checkpoints, results and plots go.')
flags.DEFINE_string('config', 'configs/grm.py:tiny', 'Config to train.')
flags.DEFINE_multi_string('set', [], 'Config overrides, e.g. --set train.num_steps=100.')
flags.DEFINE_integer('max_sequences', 0, 'Evaluate on at most this many synthetic test '
                     'sequences (0: all).')
FLAGS = flags.FLAGS

SHARED_SEQUENCES = Path(__file__).resolve().parent.parent / 'shared' / 'data' / 'sequences'


def _benchmarks(config, max_sequences: int) -> list[tuple[str, str, list]]:
    """(label, benchmark, sequences) for the synthetic test split and the shared sequences."""
    from tracking.data.benchmarks import load_benchmark
    from tracking.data.synthetic import load_synthetic
    test = load_synthetic('test', config.data.roots.synthetic or None)
    if max_sequences:
        test = test[:max_sequences]
    suites = [('synthetic', 'synthetic', test)]
    if (SHARED_SEQUENCES / 'otb').is_dir():
        suites.append(('otb_shared', 'otb', load_benchmark('otb', str(SHARED_SEQUENCES / 'otb'))))
    if (SHARED_SEQUENCES / 'vot').is_dir():
        vot = load_benchmark('vot', str(SHARED_SEQUENCES / 'vot'))
        suites.append(('vot_shared_ope', 'vot-ope', vot))
        suites.append(('vot_shared', 'vot', vot))
    return suites


def main(argv):
    del argv
    from tracking import checkpoint
    from tracking.config import load_config
    from tracking.eval import plots, report, runner
    from tracking.tracker import StaticTracker, make_tracker
    from tracking.train.loop import train
    from tracking.train.tasks import make_task
    from tracking.variables import untrained_variables

    logging.getLogger().setLevel(logging.WARNING)
    workdir = Path(FLAGS.workdir)
    config = load_config(FLAGS.config, FLAGS.set)
    task = make_task(config)

    print(f'== training {FLAGS.config} in {workdir / "train"}')
    train(config, str(workdir / 'train'), task)
    trained = checkpoint.restore_variables(str(workdir / 'train'))
    untrained = untrained_variables(config)  # the same as eval.py --baseline untrained

    trackers = {
        f'{config.tracker}_{config.variant}': lambda bench: make_tracker(config, trained, bench),
        f'{config.tracker}_{config.variant}_untrained':
            lambda bench: make_tracker(config, untrained, bench),
        'static_box': lambda bench: StaticTracker(),
    }
    for label, benchmark, sequences in _benchmarks(config, FLAGS.max_sequences):
        out = workdir / label
        results_dir = out / 'results'
        summaries, per_sequence = {}, {}
        for name, factory in trackers.items():
            per_seq, summary, failures = runner.evaluate_tracker(
                lambda: factory(benchmark), sequences, benchmark, str(results_dir), name)
            for failure in failures:
                print(f'   failed: {failure}')
            if summary is not None:
                summaries[name], per_sequence[name] = summary, per_seq
        print(f'\n== {label}: {len(sequences)} sequences')
        print(report.format_table(summaries, benchmark))
        report.write_metrics_json(str(out / 'metrics.json'), per_sequence, summaries)
        if runner.is_vot_supervised(benchmark):
            continue  # A/R/EAO: a table, no success/precision curves
        for path in plots.plot_success_precision(summaries, str(out / label), label):
            print(f'   plot: {path}')


if __name__ == '__main__':
    from tracking.logs import quiet
    quiet()
    app.run(main)
