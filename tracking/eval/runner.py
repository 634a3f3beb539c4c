"""Runs a tracker over a benchmark's sequences, writes result files, scores them from disk.

`evaluate_tracker` is restartable: a sequence whose result file is already complete is skipped,
every other one is written (atomically) as soon as it finishes, and a sequence that raises is
reported without stopping the others. Scores are always computed from the files on disk, so a
restarted run scores every finished sequence. `score_results` scores existing result folders
(ours or other trackers' raw results) without running anything. Both take Sequences or lazy
`(name, loader)` entries (tracking.data.benchmarks.benchmark_entries): an entry that cannot be
loaded (bad ground truth, named with file and line) is one failure, the others run and are scored.

VOT ('vot', 'vot2016', 'vot2017', 'vot2018', 'vot2019') runs the supervised reset protocol and
scores A/R/EAO (tracking.eval.vot_protocol, vot_scoring); the year picks the EAO interval (plain 'vot': VOT2018's).
'vot-ope' runs and scores the same sequences one-pass like OTB (AUC / precision).

Evaluation reads one way: protocol (one-pass, VOT reset: vot_protocol.ResetProtocol) -> slots
and steps (one Tracker at a time, `_run_pending`, or N sequences at once through the tracker's
TrackerFns with `batch_sequences=N`, tracking.eval.batched) -> result files (results.py) ->
metrics (metrics.py, vot_scoring.py), always read back from the files.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from typing import Callable, Sequence as Seq

import numpy as np

from tracking.data.benchmarks import canonical_benchmark
from tracking.data.sequence import Sequence
from tracking.eval import metrics as metrics_lib
from tracking.eval import results as results_lib
from tracking.eval import vot_protocol
from tracking.eval import vot_scoring
from tracking.tracker import FrameReader, Tracker, run_sequence
from tracking.logs import progress as progress_bar

logger = logging.getLogger(__name__)


# Folder under `<out>/results/` per benchmark, as the official toolkits name the data sets.
RESULT_FOLDERS = {
    'otb': 'OTB100', 'lasot': 'LaSOT', 'got10k': 'GOT-10k', 'trackingnet': 'TrackingNet',
    'uav123': 'UAV123', 'nfs': 'NFS30', 'vot': 'VOT2018', 'synthetic': 'Synthetic',
    # pytracking's dataset name for LaSOT_ext ('lasot_extension_subset', spelled like the LaSOT
    # release's LaSOT_extension_subset folder); the TNL2K toolkit titles its plots 'TNL2K'.
    'lasot_ext': 'LaSOT_extension_subset', 'tnl2k': 'TNL2K',
}
VOT_OPE = 'vot-ope'  # VOT sequences run and scored one-pass like OTB.

# Where results of benchmarks with withheld ground truth are scored.
SUBMISSION_SERVERS = {
    'got10k': 'the GOT-10k evaluation server, http://got-10k.aitestunion.com/ (upload the zip)',
    'trackingnet': 'the TrackingNet evaluation server on eval.ai (see https://tracking-net.org; '
                   'upload the flat zip of <seq>.txt files)',
}

def _normalise(benchmark: str) -> str:
    return benchmark.lower().replace('-', '').replace('_', '')


def is_vot_ope(benchmark: str) -> bool:
    """True for 'vot-ope' (also 'vot_ope', 'votope')."""
    return _normalise(benchmark) == 'votope'


def is_vot_supervised(benchmark: str) -> bool:
    """True for VOT names ('vot', 'vot2018', ...) that run the reset protocol (not 'vot-ope')."""
    return not is_vot_ope(benchmark) and canonical_benchmark(benchmark) == 'vot'


def protocol_benchmark(benchmark: str) -> str:
    """The benchmark whose result layout and metrics are used for `benchmark`.

    'vot-ope' -> 'otb' (one-pass AUC / precision on VOT sequences); every VOT year -> 'vot' (the
    supervised protocol, A/R/EAO); other names -> their canonical name.
    """
    if is_vot_ope(benchmark):
        return 'otb'
    return canonical_benchmark(benchmark)


def result_folder(benchmark: str) -> str:
    """Folder name under `<out>/results/`: 'VOT2016' for 'vot2016', 'VOT2018' for 'vot',
    'VOT-OPE' for 'vot-ope', else RESULT_FOLDERS of the canonical name."""
    if is_vot_ope(benchmark):
        return 'VOT-OPE'
    if is_vot_supervised(benchmark):
        key = _normalise(benchmark)
        return (vot_scoring.DEFAULT_YEAR if key == 'vot' else key).upper()
    return RESULT_FOLDERS[canonical_benchmark(benchmark)]


@dataclasses.dataclass(frozen=True)
class SequenceFailure:
    """A sequence that could not be run or scored."""
    name: str
    error: str

    def __str__(self) -> str:
        return f'{self.name}: {self.error}'


# A sequence, or its lazy form (name, loader) from tracking.data.benchmarks.benchmark_entries.
SequenceOrEntry = Sequence | tuple[str, Callable[[], Sequence]]


def load_sequences(items: Seq[SequenceOrEntry]) -> tuple[list[Sequence], list[SequenceFailure]]:
    """Loads (name, loader) entries one at a time; Sequences pass through unchanged.

    An entry whose loader raises (bad ground truth, missing files: the error names the file and
    line) becomes a SequenceFailure '<name>: cannot load: <error>' and the others still load.
    Each loaded sequence's ground truth is checked for silent problems (`warn_ground_truth`).
    Returns (sequences in the given order, failures).
    """
    sequences, failures = [], []
    for item in items:
        if isinstance(item, Sequence):
            sequence = item
        else:
            name, load = item
            try:
                sequence = load()
            except Exception as e:  # pylint: disable=broad-except; reported, the others load.
                failure = SequenceFailure(name, f'cannot load: {type(e).__name__}: {e}')
                logger.error('sequence failed: %s', failure)
                failures.append(failure)
                continue
        warn_ground_truth(sequence)
        sequences.append(sequence)
    return sequences, failures


def warn_ground_truth(sequence: Sequence) -> None:
    """Logs one warning for a sequence whose ground truth has boxes with negative width or height
    (scored as they are; overlaps with them are 0), naming the first such frame."""
    with np.errstate(invalid='ignore'):
        negative = np.flatnonzero((sequence.boxes[:, 2] < 0) | (sequence.boxes[:, 3] < 0))
    if negative.size:
        first = int(negative[0])
        logger.warning('sequence %s: %d ground-truth box(es) with negative width or height, '
                       'first in frame %d (line %d of the annotation file): %s',
                       sequence.name, negative.size, first, first + 1,
                       sequence.boxes[first].tolist())


def has_public_ground_truth(sequence: Sequence) -> bool:
    """False when only the frame-0 box is known (GOT-10k test, TrackingNet test)."""
    return len(sequence) < 2 or not np.all(np.isnan(sequence.boxes[1:]))


def _metric_inputs(sequence: Sequence) -> dict:
    """Keyword inputs of the metric functions that a Sequence provides."""
    inputs = {'visible': sequence.visible}
    if 'cover' in sequence.extra:
        inputs['cover'] = sequence.extra['cover']
    if 'image_size' in sequence.extra:
        inputs['image_wh'] = sequence.extra['image_size']
    return inputs


def score_sequences(read_boxes: Callable[[Sequence], np.ndarray | None], sequences: Seq[Sequence],
                    benchmark: str) -> tuple[dict, dict | None, list[SequenceFailure], list[str]]:
    """Scores the result boxes of one tracker.

    read_boxes(sequence) -> [T, 4] boxes, or None when the sequence has no result file.
    Returns (per_sequence {name: metrics dict}, summary dict or None when nothing was scored,
      failures (unreadable / malformed results), names of sequences without a result).
    """
    sequence_fn, summary_fn = metrics_lib.metric_fns(protocol_benchmark(benchmark))
    accepted = set(list(inspect.signature(sequence_fn).parameters)[2:])
    per_sequence, failures, missing = {}, [], []
    for sequence in sequences:
        try:
            boxes = read_boxes(sequence)
            if boxes is None:
                missing.append(sequence.name)
                continue
            extra = {k: v for k, v in _metric_inputs(sequence).items() if k in accepted}
            per_sequence[sequence.name] = sequence_fn(boxes, sequence.boxes, **extra)
        except (ValueError, OSError) as e:
            failures.append(SequenceFailure(sequence.name, f'cannot score results: {e}'))
    summary = summary_fn(per_sequence) if per_sequence else None
    return per_sequence, summary, failures, missing


def _log_missing(tracker_name: str, missing: list[str]) -> None:
    if missing:
        shown = ', '.join(missing[:10]) + (' ...' if len(missing) > 10 else '')
        logger.warning('%s: %d sequence(s) without results are not scored: %s',
                       tracker_name, len(missing), shown)


def _tracker_names(results_dirs: Seq[str]) -> list[str]:
    """Folder basenames; a name used twice becomes '<parent>/<basename>'."""
    paths = [os.path.normpath(os.path.abspath(d)) for d in results_dirs]
    names = [os.path.basename(p) for p in paths]
    return [f'{os.path.basename(os.path.dirname(p))}/{n}' if names.count(n) > 1 else n
            for p, n in zip(paths, names)]


def score_results(results_dirs: Seq[str], sequences: Seq[SequenceOrEntry], benchmark: str,
                  eao_convention: str = 'pysot', load_failures: list | None = None
                  ) -> dict[str, tuple[dict, dict]]:
    """Scores existing result folders without running a tracker.

    results_dirs: tracker folders holding `<seq>.txt` (or GOT-10k `<seq>/<seq>_001.txt`; VOT:
      `baseline/<seq>/<seq>_001.txt` or `<seq>/<seq>_001.txt`); the tracker name is the folder's
      basename.
    sequences: Sequences or (name, loader) entries (see `load_sequences`; one that cannot be
      loaded is logged and left out, and appended to `load_failures` when that list is given).
    eao_convention: VOT only, 'pysot' or 'vot-toolkit' (see tracking.eval.vot_scoring.eao).
    Returns {tracker name: (per_sequence {seq: metrics}, summary)}. Sequences without a result
    file are logged and left out; a tracker with no scorable sequence is logged and left out.
    Raises FileNotFoundError for a folder that does not exist.
    """
    for directory in results_dirs:
        if not os.path.isdir(directory):
            raise FileNotFoundError(f'results folder not found: {directory}')
    sequences, failed = load_sequences(sequences)
    if load_failures is not None:
        load_failures.extend(failed)
    scored = {}
    for directory, name in zip(results_dirs, _tracker_names(results_dirs)):
        if is_vot_supervised(benchmark):
            def read(sequence, directory=directory):
                path = results_lib.find_vot_result_file(directory, sequence.name)
                return None if path is None else results_lib.read_vot_records(path)

            per_sequence, summary, failures, missing = score_vot_sequences(
                read, sequences, benchmark, eao_convention)
        else:
            def read(sequence, directory=directory):
                path = results_lib.find_result_file(directory, protocol_benchmark(benchmark),
                                                    sequence.name)
                return None if path is None else results_lib.read_boxes(path)

            per_sequence, summary, failures, missing = score_sequences(read, sequences,
                                                                       benchmark)
        for failure in failures:
            logger.error('%s: %s', name, failure)
        _log_missing(name, missing)
        if summary is None:
            logger.error('%s: no sequence of %s could be scored from %s', name, benchmark,
                         directory)
            continue
        scored[name] = (per_sequence, summary)
    return scored


def evaluate_tracker(tracker_factory: Callable[[], Tracker] | None,
                     sequences: Seq[SequenceOrEntry],
                     benchmark: str, out_dir: str, tracker_name: str, progress: bool = True,
                     eao_convention: str = 'pysot', *, batch_sequences: int | None = None,
                     fns_factory: Callable | None = None
                     ) -> tuple[dict, dict | None, list[SequenceFailure]]:
    """Runs a tracker over `sequences`, writing `<out_dir>/<tracker_name>/...` result files.

    VOT names (not 'vot-ope') run the supervised protocol instead (`evaluate_vot`).

    sequences: Sequences or lazy (name, loader) entries (tracking.data.benchmarks.
      benchmark_entries): each entry is loaded inside the per-sequence failure handling, so an
      entry that cannot be loaded (bad ground truth ...) is one failure and the rest still run.
    tracker_factory: () -> Tracker, called once, and only if some sequence still has to run;
      the tracker is re-initialised on every sequence. An error raised by the factory propagates.
    out_dir: the benchmark's results folder (e.g. `<out>/results/OTB100`).
    batch_sequences: None runs one sequence at a time through tracker_factory's Tracker; N >= 1
      runs N sequences at once through fns_factory() -> (tracking.api.TrackerFns, variables)
      (tracking.eval.batched: continuous batching, same result files, same restart and failure
      handling; tracker_factory is then not used).
    Returns (per_sequence {seq: metrics}, summary or None, failures: those that could not be
    loaded, run or scored, in that order). The summary is None when
    nothing could be scored, e.g. for test splits without public ground truth (GOT-10k test,
    TrackingNet test): their results are written and zipped for the evaluation server instead.
    """
    if is_vot_supervised(benchmark):
        return evaluate_vot(tracker_factory, sequences, benchmark, out_dir, tracker_name,
                            progress, eao_convention, batch_sequences=batch_sequences,
                            fns_factory=fns_factory)
    layout_benchmark = protocol_benchmark(benchmark)
    sequences, load_failures = load_sequences(sequences)

    def is_done(sequence):
        return results_lib.is_done(out_dir, layout_benchmark, tracker_name, sequence.name,
                                   len(sequence))

    def write(sequence, boxes, times):
        results_lib.write_sequence(out_dir, layout_benchmark, tracker_name, sequence.name,
                                   boxes, times)
        logger.info('%s: %d frames, %.1f fps', sequence.name, len(sequence),
                    metrics_lib.mean_fps(times[1:]))

    def run_one(tracker, sequence):
        write(sequence, *run_sequence(tracker, sequence))

    failures = _run_all(tracker_factory, fns_factory, batch_sequences, 'ope', sequences, is_done,
                        run_one, write, f'{tracker_name} on {benchmark}', progress)

    with_gt = [s for s in sequences if has_public_ground_truth(s)]
    if len(with_gt) < len(sequences):
        _report_withheld(out_dir, benchmark, tracker_name, len(sequences) - len(with_gt))

    def read(sequence):
        if not is_done(sequence):
            return None
        return results_lib.read_sequence(out_dir, layout_benchmark, sequence.name, tracker_name)

    per_sequence, summary, score_failures, missing = score_sequences(read, with_gt, benchmark)
    failed = {f.name for f in failures}
    _log_missing(tracker_name, [n for n in missing if n not in failed])
    for failure in score_failures:
        logger.error('%s', failure)
    return per_sequence, summary, load_failures + failures + score_failures


def _run_all(tracker_factory, fns_factory, batch_sequences: int | None, protocol: str,
             sequences: Seq[Sequence], is_done: Callable[[Sequence], bool],
             run_one: Callable[[Tracker, Sequence], None], write: Callable, description: str,
             progress: bool) -> list[SequenceFailure]:
    """The sequences still to run, one at a time (`_run_pending`, batch_sequences None) or N at
    once (tracking.eval.batched.run_pending_batched with write(sequence, records, times))."""
    if batch_sequences is None:
        return _run_pending(tracker_factory, sequences, is_done, run_one, description, progress)
    if fns_factory is None:
        raise ValueError('batch_sequences needs fns_factory () -> (TrackerFns, variables)')
    from tracking.eval import batched  # Late: batched imports JAX.
    return batched.run_pending_batched(fns_factory, sequences, is_done, write, protocol,
                                       description, progress, batch_sequences)


def _run_pending(tracker_factory: Callable[[], Tracker], sequences: Seq[Sequence],
                 is_done: Callable[[Sequence], bool],
                 run_one: Callable[[Tracker, Sequence], None], description: str,
                 progress: bool) -> list[SequenceFailure]:
    """Calls run_one(tracker, sequence) (which writes the sequence's results) for every sequence
    that is not is_done, with one tracker made by tracker_factory on first need. A sequence that
    raises is reported and the others still run; returns those failures."""
    failures: list[SequenceFailure] = []
    tracker = None
    todo = [s for s in sequences if not is_done(s)]
    skipped = len(sequences) - len(todo)
    if skipped:
        logger.info('%s: %d of %d sequences already have complete results, skipping them',
                    description, skipped, len(sequences))
    for sequence in progress_bar(todo, desc=description, unit='seq', enabled=progress):
        if tracker is None:
            tracker = tracker_factory()  # Errors here are not a sequence's fault: they propagate.
        try:
            run_one(tracker, sequence)
        except Exception as e:  # pylint: disable=broad-except; reported, the others still run.
            failure = SequenceFailure(sequence.name, f'{type(e).__name__}: {e}')
            logger.error('sequence failed: %s', failure)
            failures.append(failure)
    return failures


def _report_withheld(out_dir: str, benchmark: str, tracker_name: str, count: int) -> None:
    """Zips the results for upload and says where to submit them."""
    key = canonical_benchmark(benchmark)
    server = SUBMISSION_SERVERS.get(key, "the benchmark's evaluation server")
    where = os.path.join(out_dir, tracker_name)
    if key in SUBMISSION_SERVERS:
        try:
            where = str(results_lib.zip_results(out_dir, key, tracker_name))
        except (FileNotFoundError, ValueError) as e:
            logger.warning('could not zip results: %s', e)
    logger.warning('%d sequence(s) of %s have no public ground truth after frame 0; they are '
                   'not scored here. Submit %s to %s.', count, benchmark, where, server)


# --- VOT supervised (reset) protocol ------------------------------------------------------------

def score_vot_sequences(read_records: Callable[[Sequence], list | None], sequences: Seq[Sequence],
                        benchmark: str, eao_convention: str = 'pysot'
                        ) -> tuple[dict, dict | None, list[SequenceFailure], list[str]]:
    """Scores one tracker's VOT records; like `score_sequences`, with A/R/EAO.

    read_records(sequence) -> records list or None when the sequence has no result file.
    The EAO interval comes from the benchmark name (vot2016 ... vot2019; plain vot: VOT2018).
    """
    interval = vot_scoring.eao_interval(_normalise(benchmark))
    per_sequence, failures, missing = {}, [], []
    for sequence in sequences:
        try:
            records = read_records(sequence)
            if records is None:
                missing.append(sequence.name)
                continue
            per_sequence[sequence.name] = vot_scoring.score_sequence(
                records, vot_protocol.ground_truth_regions(sequence), vot_protocol.image_size(sequence))
        except (ValueError, OSError) as e:
            failures.append(SequenceFailure(sequence.name, f'cannot score results: {e}'))
    summary = (vot_scoring.vot_summary(per_sequence, interval, eao_convention)
               if per_sequence else None)
    return per_sequence, summary, failures, missing


def evaluate_vot(tracker_factory: Callable[[], Tracker] | None,
                 sequences: Seq[SequenceOrEntry],
                 benchmark: str, out_dir: str, tracker_name: str, progress: bool = True,
                 eao_convention: str = 'pysot', *, batch_sequences: int | None = None,
                 fns_factory: Callable | None = None
                 ) -> tuple[dict, dict | None, list[SequenceFailure]]:
    """`evaluate_tracker` for VOT: reset protocol, `<out_dir>/<tracker>/baseline/<seq>/
    <seq>_001.txt` files (restartable, atomic), A/R/EAO scored from the files on disk."""
    vot_scoring.eao_interval(_normalise(benchmark))  # An unknown year fails before any run.
    sequences, load_failures = load_sequences(sequences)

    def is_done(sequence):
        return results_lib.vot_is_done(out_dir, tracker_name, sequence.name, len(sequence))

    def write(sequence, records, times):
        results_lib.write_vot_records(out_dir, tracker_name, sequence.name, records, times)
        logger.info('%s: %d frames, %d failure(s), %.1f fps', sequence.name, len(sequence),
                    len(vot_scoring.failure_frames(records)), metrics_lib.mean_fps(times))

    def run_one(tracker, sequence):
        write(sequence, *vot_protocol.run_supervised(tracker, sequence, read_frame=FrameReader()))

    failures = _run_all(tracker_factory, fns_factory, batch_sequences, 'vot', sequences, is_done,
                        run_one, write, f'{tracker_name} on {benchmark}', progress)

    def read(sequence):
        if not is_done(sequence):
            return None
        return results_lib.read_vot_records(results_lib.vot_result_path(out_dir, tracker_name, sequence.name))

    per_sequence, summary, score_failures, missing = score_vot_sequences(
        read, sequences, benchmark, eao_convention)
    failed = {f.name for f in failures}
    _log_missing(tracker_name, [n for n in missing if n not in failed])
    for failure in score_failures:
        logger.error('%s', failure)
    return per_sequence, summary, load_failures + failures + score_failures
