"""Per-frame tracking latency of GRM: network forward alone, and the full tracker step.

    python benchmarks/grm_latency.py [--variant vitb_256] [--frames 30]

The full step is what `GRMTracker.track` costs: the exact crop (cv2), normalisation, the jitted
forward, Hann window + box decoding and the map back to the frame. Weights are random (the cost
does not depend on them). Frames come from ../shared/data/sequences/vot/bag when present, else
random 480x360 frames. Writes benchmarks/results/grm_latency_<platform>.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (benchmark_frames, time_calls, time_tracker_steps,  # noqa: E402
                               write_result)
from configs.grm import get_config  # noqa: E402
from grm_jax.model import init_variables  # noqa: E402
from grm_jax.tracker import GRMTracker, make_forward  # noqa: E402

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variant', default='vitb_256')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--repeats', type=int, default=15)
    args = parser.parse_args()

    config = get_config(args.variant)
    variables = jax.device_put(init_variables(config, jax.random.PRNGKey(0)))
    m = config.model
    template = np.zeros((1, m.template_size, m.template_size, 3), np.float32)
    search = np.zeros((1, m.search_size, m.search_size, 3), np.float32)
    forward = make_forward(config)
    forward_times = time_calls(
        lambda: jax.block_until_ready(forward(variables, template, search, 0.0)),
        warmup=2, repeats=args.repeats)

    frames, init_box, source = benchmark_frames(args.frames)
    step_times = time_tracker_steps(GRMTracker(config, variables), frames, init_box)

    write_result(f'grm_latency_{args.variant}', dict(
        variant=args.variant, frames=source, batch=1,
        forward_median_s=float(np.median(forward_times)),
        forward_min_s=float(forward_times.min()),
        track_step_median_s=float(np.median(step_times)),
        track_step_min_s=float(step_times.min()),
        track_fps=float(1.0 / np.median(step_times)),
        command=f'python benchmarks/grm_latency.py --variant {args.variant}'))


if __name__ == '__main__':
    main()
