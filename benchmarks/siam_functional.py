"""What the functional SiamRPN++ step adds to the network: the jitted `siam.tracker_fns` step per
frame (device crop, network, post-processing; float64 and float32 state) against the network's
track forward alone, measured interleaved in one process.

    python benchmarks/siam_functional.py [--variant r50_l234] [--frames 20] [--conv_impl xla]

Weights are random (the cost does not depend on them). Frames come from
../shared/data/sequences/vot/bag when present, else random 480x360 frames. Each round times, in
turn: the network alone (jitted `track_forward` on a fixed crop and template), the jitted step
with float64 state, the jitted step with float32 state, and `SiamRPNTracker.track` (the adapter:
the same step plus the host->device copy of the frame), and the step without its network (the
search crop and the post-processing of fixed network outputs, float64 and float32 state);
medians over the rounds, wall clock and process CPU time (all threads; steadier than the wall
clock when other jobs share the cores). Interleaving keeps the comparison fair on a shared CPU.
Writes benchmarks/results/siam_functional.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS_DIR, benchmark_frames, machine  # noqa: E402
from configs.siamrpn import get_config  # noqa: E402
from siam.functional import (context_size, crop, geometry, prepare_variables,  # noqa: E402
                             round_side, state_scope, to_bgr, tracker_fns, update_state)
from siam.model import SiamRPN, build_model, init_variables  # noqa: E402
from siam.tracker import SiamRPNTracker  # noqa: E402


def _timed(fn):
    """(wall seconds, process CPU seconds) of fn() until its result is ready."""
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - wall, time.process_time() - cpu


def _crop_and_postprocess(config, state, outputs, float64):
    """A jitted (frame, frame_hw) -> (crop, center, size, score): the step without the
    network (the channel-average-padded search crop, then the post-processing of fixed network
    outputs), float64 or float32 state, to time what the functional step adds around the
    network."""
    geo = geometry(config)
    cls, loc = outputs['cls'][0], outputs['loc'][0]
    dtype = jnp.float64 if float64 else jnp.float32

    @jax.jit
    def run(frame, frame_hw):
        with state_scope(float64):
            center, size = state['center'].astype(dtype), state['size'].astype(dtype)
            side_z = context_size(size[0], size[1], geo.context_amount)
            x_crop = crop(to_bgr(frame), frame_hw, center,
                          round_side(side_z * (geo.search_size / geo.template_size)),
                          geo.search_size, state['channel_average'])
            new = update_state(geo, cls, loc, center, size, geo.template_size / side_z,
                               frame_hw)
        return x_crop, new
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variant', default='r50_l234')
    parser.add_argument('--frames', type=int, default=20, help='timed rounds (one frame each)')
    parser.add_argument('--conv_impl', default='xla', choices=['xla', 'winograd'])
    parser.add_argument('--out', default=str(RESULTS_DIR / 'siam_functional.json'))
    args = parser.parse_args()

    config = get_config(args.variant)
    config.test.conv_impl = args.conv_impl
    raw = init_variables(config.model, jax.random.PRNGKey(0))
    variables = jax.device_put(prepare_variables(config, raw))
    frames, init_box, source = benchmark_frames(args.frames + 1)
    frame_hw = np.asarray(frames[0].shape[:2], np.int32)
    device_frames = [jax.device_put(f) for f in frames]

    steps = {}
    for name, float64 in (('step_float64', True), ('step_float32', False)):
        fns = tracker_fns(config, float64_state=float64)
        init, step = jax.jit(fns.init), jax.jit(fns.step)
        state = init(variables, device_frames[0], frame_hw, np.asarray(init_box, np.float32))
        steps[name] = [step, state]
    model = build_model(config.model, args.conv_impl)
    forward = jax.jit(lambda v, x, zf: model.apply(v, x, zf, method=SiamRPN.track_forward)['cls'])
    side = int(config.test.get('instance_size', None) or config.model.search_size)
    crop = jax.device_put(np.zeros((1, side, side, 3), np.float32))
    zf = tuple(t[None] for t in steps['step_float64'][1]['template'])
    tracker = SiamRPNTracker(config, raw)
    tracker.initialize(frames[0], init_box)
    outputs = model.apply(variables, crop, zf, method=SiamRPN.track_forward)
    extras = {f'crop_and_postprocess_float{bits}': _crop_and_postprocess(
        config, steps['step_float64'][1], outputs, bits == 64) for bits in (64, 32)}

    def run_step(name, frame):
        step, state = steps[name]

        def call():
            new_state, out = step(variables, state, frame, frame_hw)
            steps[name][1] = new_state
            return out['box']
        return call

    # Compile and warm every path once (frame 1), then time the rounds on frames 1..n.
    for name in steps:
        _timed(run_step(name, device_frames[1]))
    _timed(lambda: forward(variables, crop, zf))
    for fn in extras.values():
        _timed(lambda: fn(device_frames[1], frame_hw))
    tracker.track(frames[1])
    times = {name: [] for name in ('network', 'step_float64', 'step_float32', 'adapter_track',
                                   *extras)}
    for i in range(1, args.frames + 1):
        times['network'].append(_timed(lambda: forward(variables, crop, zf)))
        for name, fn in extras.items():
            times[name].append(_timed(lambda: fn(device_frames[i], frame_hw)))
        for name in steps:
            times[name].append(_timed(run_step(name, device_frames[i])))
        times['adapter_track'].append(_timed(lambda: tracker.track(frames[i])))

    wall = {k: np.asarray([t[0] for t in v]) for k, v in times.items()}
    cpu = {k: np.asarray([t[1] for t in v]) for k, v in times.items()}
    median = {k: float(np.median(v)) for k, v in wall.items()}
    median_cpu = {k: float(np.median(v)) for k, v in cpu.items()}

    def added(m):
        net = m['network']
        return {k: (v - net) / net if k.startswith(('step', 'adapter')) else v / net
                for k, v in m.items() if k != 'network'}
    result = dict(
        variant=args.variant, conv_impl=args.conv_impl, frames=source, rounds=args.frames,
        median_s=median, min_s={k: float(np.min(v)) for k, v in wall.items()},
        median_cpu_s=median_cpu, min_cpu_s={k: float(np.min(v)) for k, v in cpu.items()},
        step_float64_fps=1.0 / median['step_float64'],
        # Relative to the network alone: (step - network) / network for the steps, part /
        # network for the crop-and-post-processing parts; wall and process-CPU medians.
        added_over_network=added(median), added_over_network_cpu=added(median_cpu),
        float64_state_cost_s=(median['crop_and_postprocess_float64']
                              - median['crop_and_postprocess_float32']),
        command=f'python benchmarks/siam_functional.py --variant {args.variant} '
                f'--frames {args.frames} --conv_impl {args.conv_impl}',
        machine=machine(), date=time.strftime('%Y-%m-%d %H:%M:%S'))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))
    print(f'written: {out}')


if __name__ == '__main__':
    main()
