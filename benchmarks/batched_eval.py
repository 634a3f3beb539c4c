"""Frames/s of whole-benchmark evaluation: one sequence at a time (the Tracker classes) against
`--batch_sequences` N (tracking.eval.batched), end to end, and the time outside the network.

    python -m tracking.data.synthetic_folder --split test --out /tmp/synthetic_test   # once (TF)
    python benchmarks/batched_eval.py --root /tmp/synthetic_test [--trackers grm,siamrpn] \
        [--batches 8,32] [--sequences 30] [--max_frames 0] [--fused]

For each tracker (the tiny configs, random weights: the cost does not depend on them; the full
GRM-B / SiamRPN++ R50 take minutes per sequence on this CPU, so they are not run here) and each
mode, the synthetic test split is evaluated from the exported folder through
`runner.evaluate_tracker` exactly as eval.py does it (frames decoded from PNG files, protocol,
result files written, metrics), into a fresh folder. Each mode first runs the same sequences cut
to 3 frames (same frame size, so the same compiled programs) so compilation is not timed.

Reported per mode: end-to-end frames/s (real frames over wall seconds), the batched runner's
breakdown (device calls, waiting for decoded frames, assembling the padded batch, protocol and
result files; slot occupancy = real frames / (iterations x N)), and the network's own time per
frame: the jitted network forward alone (GRM: `network_fn`, SiamRPN++: `track_forward`) on
device-resident inputs at batch N (1 for the class path), and the whole jitted vmapped step
(crops, network, post-processing). outside_network = 1 - network seconds per real frame /
end-to-end seconds per real frame. Writes benchmarks/results/batched_eval.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS_DIR, machine, time_calls  # noqa: E402
from tracking.config import load_config  # noqa: E402
from tracking.data.sequence import Sequence  # noqa: E402
from tracking.data.synthetic_folder import synthetic_folder_entries  # noqa: E402
from tracking.eval import batched, runner  # noqa: E402
from tracking.tracker import make_tracker, make_tracker_fns  # noqa: E402
from tracking.variables import untrained_variables  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {'grm': 'grm.py:tiny', 'siamrpn': 'siamrpn.py:tiny'}


def _cut(sequence: Sequence, length: int) -> Sequence:
    return Sequence(sequence.name, list(sequence.frames[:length]), sequence.boxes[:length],
                    None if sequence.visible is None else sequence.visible[:length],
                    dict(sequence.extra))


def _evaluate(sequences, batch, tracker, fns_and_variables, out, fused, stats=None):
    kwargs = {}
    if batch:
        original = batched.run_pending_batched
        batched.run_pending_batched = lambda *a, **k: original(*a, **k, fused=fused,
                                                               stats=stats)
        kwargs = dict(batch_sequences=batch, fns_factory=lambda: fns_and_variables)
    try:
        start = time.perf_counter()
        _, summary, failures = runner.evaluate_tracker(
            (lambda: tracker) if not batch else None, sequences, 'synthetic', out, 'run',
            progress=False, **kwargs)
        seconds = time.perf_counter() - start
    finally:
        if batch:
            batched.run_pending_batched = original
    assert not failures, failures
    return seconds, summary


def _network_seconds(name, config, variables, fns_and_variables, batch, repeats):
    """(forward seconds per frame, whole step seconds per frame) at batch `batch`."""
    fns, prepared = fns_and_variables
    frames = jnp.zeros((batch, 192, 192, 3), jnp.uint8) + 90
    hw = jnp.full((batch, 2), 160, jnp.int32)
    boxes = jnp.tile(jnp.array([[60.0, 60.0, 30.0, 24.0]], jnp.float32), (batch, 1))
    vinit = jax.jit(jax.vmap(fns.init, in_axes=(None, 0, 0, 0)))
    vstep = jax.jit(jax.vmap(fns.step, in_axes=(None, 0, 0, 0)))
    state = jax.block_until_ready(vinit(prepared, frames, hw, boxes))
    step_s = time_calls(lambda: jax.block_until_ready(vstep(prepared, state, frames, hw)),
                        warmup=2, repeats=repeats)
    if name == 'grm':
        from grm_jax.functional import network_fn
        from grm_jax.model import model_config_of
        cfg = model_config_of(config)
        forward = jax.jit(network_fn(cfg))
        template = jnp.zeros((batch, cfg.template_size, cfg.template_size, 3), jnp.float32)
        search = jnp.zeros((batch, cfg.search_size, cfg.search_size, 3), jnp.float32)
        call = lambda: forward(prepared, template, search, jnp.float32(0.0))  # noqa: E731
    else:
        from siam.functional import geometry
        from siam.model import SiamRPN, build_model
        geo = geometry(config)
        model = build_model(config.model, config.test.get('conv_impl', 'xla'))
        track = jax.jit(lambda v, x, zf: model.apply(v, x, zf, method=SiamRPN.track_forward))
        zf = tuple(state['template'])   # [N, 7, 7, C] each
        search = jnp.zeros((batch, geo.search_size, geo.search_size, 3), jnp.float32)
        call = lambda: track(prepared, search, zf)  # noqa: E731
    forward_s = time_calls(lambda: jax.block_until_ready(call()), warmup=2, repeats=repeats)
    return float(np.median(forward_s)) / batch, float(np.median(step_s)) / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', required=True, help='exported synthetic test folder')
    parser.add_argument('--trackers', default='grm,siamrpn')
    parser.add_argument('--batches', default='8,32')
    parser.add_argument('--sequences', type=int, default=30)
    parser.add_argument('--max_frames', type=int, default=0, help='cut sequences (0: whole)')
    parser.add_argument('--fused', action='store_true', help='also time fused init+step (N=8)')
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    entries = synthetic_folder_entries(args.root)[:args.sequences]
    sequences = [load() for _, load in entries]
    if args.max_frames:
        sequences = [_cut(s, args.max_frames) for s in sequences]
    frames = sum(len(s) for s in sequences)
    warm = [_cut(s, 3) for s in sequences]
    batches = [int(b) for b in args.batches.split(',') if b]
    result = {'command': 'python benchmarks/batched_eval.py ' + ' '.join(sys.argv[1:]),
              'sequences': len(sequences), 'frames': frames, 'trackers': {}}
    work = Path(tempfile.mkdtemp(prefix='batched_eval_'))
    try:
        for name in args.trackers.split(','):
            config = load_config(str(REPO / 'configs' / CONFIGS[name]))
            variables = untrained_variables(config)
            tracker = make_tracker(config, variables, 'synthetic')
            fns_and_variables = make_tracker_fns(config, variables, 'synthetic')
            modes = [('class', 0, False)] + [(f'batch_{b}', b, False) for b in batches]
            if args.fused:
                modes.append(('batch_8_fused', 8, True))
            rows, summaries = {}, {}
            for label, batch, fused in modes:
                _evaluate(warm, batch, tracker, fns_and_variables, work / name / label / 'warm',
                          fused, batched.BatchStats())
                stats = batched.BatchStats()
                seconds, summary = _evaluate(sequences, batch, tracker, fns_and_variables,
                                             work / name / label / 'run', fused, stats)
                forward_s, step_s = _network_seconds(name, config, variables, fns_and_variables,
                                                     max(batch, 1), args.repeats)
                per_frame = seconds / frames
                row = {'seconds': seconds, 'frames_per_s': frames / seconds,
                       'seconds_per_frame': per_frame,
                       'network_forward_s_per_frame': forward_s,
                       'jitted_step_s_per_frame': step_s,
                       'outside_network': 1.0 - forward_s / per_frame,
                       'outside_jitted_step': 1.0 - step_s / per_frame,
                       'success_auc': float(summary['auc'])}
                if batch:
                    occupancy = stats.slot_frames / max(stats.iterations * batch, 1)
                    row.update({'breakdown_s': dataclasses.asdict(stats),
                                'slot_occupancy': occupancy,
                                'outside_network_at_occupancy':
                                    1.0 - forward_s / occupancy / per_frame})
                rows[label] = row
                summaries[label] = row['success_auc']
                print(name, label, json.dumps({k: v for k, v in row.items()
                                               if k != 'breakdown_s'}), flush=True)
            result['trackers'][name] = {'config': CONFIGS[name], 'modes': rows,
                                        'same_auc': len(set(summaries.values())) == 1}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / 'batched_eval.json'
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(f'written: {path}')


if __name__ == '__main__':
    main()
