"""Seconds per frame of GRM's functional tracking step against the network forward alone.

    python benchmarks/grm_functional.py [--variant vitb_256] [--frames 12] [--scan-frames 8]

The step (`grm_jax.tracker_fns(config).step`, jitted) is the whole tracking step on the device:
the exact search crop (tracking.device_crops), normalisation, the network, the Hann-window
argmax, the map back and the margin clip. The forward is the network alone on crops already on
the device (`grm_jax.tracker.make_forward`, the same network function). Calls of the two are
interleaved (step, forward, step, ...) so both see the same load on a shared machine; each is
timed to `block_until_ready` in wall and process CPU seconds (the latter less sensitive to
other jobs on a shared machine), medians over --frames frames after two warm-up calls. The
crop + normalisation alone and `jax.jit(track_video)` (one lax.scan, per frame) are timed too.
Weights are random (the cost does not depend on them); frames are ../shared's vot/bag when
present, else random 480x360. Writes benchmarks/results/grm_functional_<platform>.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import benchmark_frames, write_result  # noqa: E402
from configs.grm import get_config  # noqa: E402
from grm_jax import functional  # noqa: E402
from grm_jax.model import init_variables  # noqa: E402
from grm_jax.tracker import make_forward  # noqa: E402
from tracking.api import track_video  # noqa: E402


def _timed(fn):
    """((wall seconds, process CPU seconds), result) of fn() run to completion."""
    start, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return (time.perf_counter() - start, time.process_time() - cpu), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variant', default='vitb_256')
    parser.add_argument('--frames', type=int, default=12, help='timed step/forward pairs')
    parser.add_argument('--scan-frames', type=int, default=8,
                        help='frames of the timed track_video run (0: skip)')
    args = parser.parse_args()

    config = get_config(args.variant)
    m = config.model
    variables = jax.device_put(init_variables(config, jax.random.PRNGKey(0)))
    frames, init_box, source = benchmark_frames(max(args.frames + 2, args.scan_frames))
    frames = [jax.device_put(f) for f in frames]
    frame_hw = jax.device_put(np.array(frames[0].shape[:2], np.int32))
    box0 = np.asarray(init_box, np.float32)

    fns = functional.tracker_fns(config)
    init, step = jax.jit(fns.init), jax.jit(fns.step)
    crop = jax.jit(lambda frame, hw, box: functional._search_crop(frame, hw, box, m))
    forward = make_forward(config).jitted
    state = init(variables, frames[0], frame_hw, box0)
    search = crop(frames[1], frame_hw, state['box'])[0][None]
    template = state['template'][None]
    threshold = np.float32(0.0)

    step_s, forward_s, crop_s = [], [], []
    for i in range(args.frames + 2):          # the first two pairs are warm-up (compilation)
        frame = frames[1 + i]
        box = state['box']
        t_step, (state, _) = _timed(lambda: step(variables, state, frame, frame_hw))
        t_forward, _ = _timed(lambda: forward(variables, template, search, threshold))
        t_crop, _ = _timed(lambda: crop(frame, frame_hw, box))
        if i >= 2:
            step_s.append(t_step)
            forward_s.append(t_forward)
            crop_s.append(t_crop)
    (step_s, step_cpu), (forward_s, forward_cpu), (crop_s, crop_cpu) = (
        np.asarray(v).T for v in (step_s, forward_s, crop_s))
    step_med, forward_med = float(np.median(step_s)), float(np.median(forward_s))
    paired = step_s / forward_s                                # same-load ratios, frame by frame

    result = dict(
        variant=args.variant, frames=source, batch=1, timed_frames=args.frames,
        step_median_s=step_med, step_min_s=float(step_s.min()),
        forward_median_s=forward_med, forward_min_s=float(forward_s.min()),
        crop_normalize_median_s=float(np.median(crop_s)),
        step_over_forward_median=step_med / forward_med,
        step_over_forward_min=float(step_s.min() / forward_s.min()),
        step_over_forward_paired_median=float(np.median(paired)),
        step_fps=1.0 / step_med,
        # Process CPU seconds (all threads): less sensitive to other jobs on a shared machine.
        step_cpu_median_s=float(np.median(step_cpu)),
        forward_cpu_median_s=float(np.median(forward_cpu)),
        crop_normalize_cpu_median_s=float(np.median(crop_cpu)),
        step_over_forward_cpu_median=float(np.median(step_cpu) / np.median(forward_cpu)))
    if args.scan_frames:
        video = np.stack([np.asarray(f) for f in frames[:args.scan_frames + 1]])
        run = jax.jit(track_video, static_argnums=0)
        _timed(lambda: run(fns, variables, video, frame_hw, box0))          # compile
        (total, total_cpu), _ = _timed(lambda: run(fns, variables, video, frame_hw, box0))
        result.update(scan_frames=args.scan_frames,
                      track_video_s_per_frame=total / args.scan_frames,
                      track_video_cpu_s_per_frame=total_cpu / args.scan_frames)
    result['command'] = (f'python benchmarks/grm_functional.py --variant {args.variant} '
                         f'--frames {args.frames} --scan-frames {args.scan_frames}')
    write_result(f'grm_functional_{args.variant}', result)


if __name__ == '__main__':
    main()
