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
from benchmarks.common import time_calls, write_result  # noqa: E402
from configs.grm import get_config  # noqa: E402
from grm_jax.model import init_variables  # noqa: E402
from grm_jax.tracker import GRMTracker, make_forward  # noqa: E402
from tracking.data.benchmarks import load_benchmark  # noqa: E402

BAG = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'sequences' / 'vot' / 'bag'


def _frames(count: int) -> tuple[list[np.ndarray], np.ndarray, str]:
    if BAG.is_dir():
        sequence = load_benchmark('vot', str(BAG))[0]
        return [sequence.frame(i) for i in range(count + 1)], sequence.boxes[0], 'vot/bag'
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (360, 480, 3), np.uint8) for _ in range(count + 1)]
    return frames, np.array([200.0, 150.0, 60.0, 40.0], np.float32), 'random 480x360'


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

    frames, init_box, source = _frames(args.frames)
    tracker = GRMTracker(config, variables)
    tracker.initialize(frames[0], init_box)
    tracker.track(frames[1])  # compile
    step_times = []
    for frame in frames[1:]:
        step_times.append(time_calls(lambda: tracker.track(frame), warmup=0, repeats=1)[0])
    step_times = np.asarray(step_times)

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
