"""Per-frame tracking latency of SiamRPN++: the network's track forward alone, and the full
tracker step (`SiamRPNTracker.track`: cv2 crop, jitted forward, anchor decoding, penalties).

    python benchmarks/siam_latency.py [--variant r50_l234] [--frames 30] [--conv_impl winograd4]

Weights are random (the cost does not depend on them). Frames come from
../shared/data/sequences/vot/bag when present, else random 480x360 frames.
Writes benchmarks/results/siam_latency_<variant>[_winograd]_<platform>.json.
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
from configs.siamrpn import get_config  # noqa: E402
from siam.layers import CONV_IMPLS  # noqa: E402
from siam.model import init_variables  # noqa: E402
from siam.tracker import SiamRPNTracker  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variant', default='r50_l234')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--conv_impl', default='xla', choices=list(CONV_IMPLS),
                        help="config.test.conv_impl ('winograd' / 'winograd4': the 3x3 convs as "
                             "Winograd F(2x2, 3x3) / F(4x4, 3x3))")
    args = parser.parse_args()

    config = get_config(args.variant)
    config.test.conv_impl = args.conv_impl
    variables = jax.device_put(init_variables(config.model, jax.random.PRNGKey(0)))
    tracker = SiamRPNTracker(config, variables)
    frames, init_box, source = benchmark_frames(args.frames)
    tracker.initialize(frames[0], init_box)
    side = tracker.search_size
    crop = np.zeros((1, side, side, 3), np.float32)
    forward_times = time_calls(
        lambda: jax.block_until_ready(tracker.run_track(crop, tracker._zf)['cls']),
        warmup=2, repeats=args.repeats)
    step_times = time_tracker_steps(tracker, frames, init_box)

    suffix = '' if args.conv_impl == 'xla' else f'_{args.conv_impl}'
    write_result(f'siam_latency_{args.variant}{suffix}', dict(
        variant=args.variant, conv_impl=args.conv_impl, frames=source, batch=1,
        forward_median_s=float(np.median(forward_times)),
        forward_min_s=float(forward_times.min()),
        track_step_median_s=float(np.median(step_times)),
        track_step_min_s=float(step_times.min()),
        track_fps=float(1.0 / np.median(step_times)),
        pysot_track_step_s=0.53,  # fact sheet section 12; side by side: siam_vs_official.py
        command=f'python benchmarks/siam_latency.py --variant {args.variant} '
                f'--conv_impl {args.conv_impl}'))


if __name__ == '__main__':
    main()
