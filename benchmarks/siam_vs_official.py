"""SiamRPN++'s tracker step (each test.conv_impl) against the official pysot tracker, side by side.

    python benchmarks/siam_vs_official.py --official_cmd "<command>" [--variant r50_l234] \
        [--impls xla,winograd,winograd4] [--rounds 12] [--warmup 2] [--weights bundle|random] \
        [--out siam_vs_official.json]

Two persistent processes: this one runs ours (`SiamRPNTracker.track`, the adapter over the
jitted `siam.tracker_fns(config).step`: frame to the device, the exact pysot crop, the network,
anchor decoding, penalties, window, size smoothing and clip, the box back to the host), once
per conv_impl in `--impls`, each tracker with its own state; `--official_cmd` starts the other,
which drives the official tracker with benchmarks/side_by_side.py's line protocol (ready;
`init <image> x y w h` -> ok; `step <image>` -> `x y w h wall_s cpu_s`, its `track()` alone timed
in its own process; quit). This repository ships no such driver (it would import the official
code); docs/performance.md says exactly what the one measured here does.

All trackers are initialised on frame 1 of ../shared's vot/bag, then round by round each tracks
the next frame in turn: the official one, then ours in an order that rotates every round, so
all see the same load on a shared machine. Frames are decoded outside the timed regions. Each
side times its step in wall seconds and in its own process CPU seconds (all threads);
`--warmup` rounds are untimed (compilation). Reported per impl: medians of ours and of the
official in the same rounds, the median of the per-round ratios ours / official (wall and CPU),
the largest box difference from the official tracker's box of the same frame (free run: with
`--weights bundle` both run the reference bundle's weights, ours through
`siam.convert.from_official`), and the load average before and after.
Writes benchmarks/results/siam_vs_official.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import BAG, write_result  # noqa: E402
from benchmarks.side_by_side import Official, summarize_rounds, timed_track  # noqa: E402
from configs.siamrpn import get_config  # noqa: E402
from siam.layers import CONV_IMPLS  # noqa: E402
from siam.tracker import SiamRPNTracker  # noqa: E402
from tracking.images import load_image  # noqa: E402

BUNDLE = REPO.parent / 'shared' / 'reference' / 'siamrpn_r50_l234'


def _variables(config, weights: str):
    if weights == 'bundle':
        sys.path.insert(0, str(REPO / 'tests'))
        from helpers import reference_state_dict
        from siam.convert import from_official
        return from_official(reference_state_dict(BUNDLE), config)
    from siam.model import init_variables
    return init_variables(config.model, jax.random.PRNGKey(0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--official_cmd', required=True,
                        help='command starting the official-tracker driver (line protocol)')
    parser.add_argument('--variant', default='r50_l234')
    parser.add_argument('--impls', default='xla,winograd,winograd4',
                        help=f'comma-separated test.conv_impl values ({CONV_IMPLS})')
    parser.add_argument('--rounds', type=int, default=12, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--weights', choices=('bundle', 'random'), default='bundle')
    parser.add_argument('--out', default='siam_vs_official.json', help='file in benchmarks/results')
    args = parser.parse_args()
    impls = args.impls.split(',')
    unknown = [i for i in impls if i not in CONV_IMPLS]
    if unknown:
        raise SystemExit(f'--impls: unknown {unknown} (known: {CONV_IMPLS})')
    if not BAG.is_dir():
        raise SystemExit(f'frames not found: {BAG}')
    paths = sorted(BAG.glob('*.jpg'))[:args.warmup + args.rounds + 1]
    if len(paths) < args.warmup + args.rounds + 1:
        raise SystemExit(f'{BAG}: {len(paths)} frames, need {args.warmup + args.rounds + 1}')
    init_box = np.load(BUNDLE / 'track.npz')['init_box'] if args.weights == 'bundle' \
        else np.array([312.64, 146.89, 106.13, 96.41])

    config = get_config(args.variant)
    variables = jax.device_put(_variables(config, args.weights))
    trackers = {}
    for impl in impls:
        c = get_config(args.variant)
        c.test.conv_impl = impl
        trackers[impl] = SiamRPNTracker(c, variables)
    official = Official(args.official_cmd)
    load_before = os.getloadavg()
    rows = []
    try:
        first = load_image(paths[0])
        for tracker in trackers.values():
            tracker.initialize(first, init_box)
        official.init(paths[0], init_box)
        for i, path in enumerate(paths[1:]):
            frame = load_image(path)
            box_official, wall_official, cpu_official = official.step(path)
            row = dict(frame=path.name, official_wall_s=wall_official,
                       official_cpu_s=cpu_official, warmup=i < args.warmup,
                       order=impls[i % len(impls):] + impls[:i % len(impls)])
            for impl in row['order']:
                box, wall, cpu = timed_track(trackers[impl], frame)
                row.update({f'{impl}_wall_s': wall, f'{impl}_cpu_s': cpu,
                            f'{impl}_box_diff_px': float(np.abs(box - box_official).max())})
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        official.close()
    load_after = os.getloadavg()

    result = dict(
        variant=args.variant, frames='vot/bag', weights=args.weights, rounds=args.rounds,
        warmup=args.warmup,
        ours='SiamRPNTracker.track (jitted siam.tracker_fns step), one tracker per conv_impl',
        official_cmd=args.official_cmd,
        impls={impl: summarize_rounds(rows, impl, f'{impl}_box_diff_px') for impl in impls},
        cpus_in_affinity_mask=len(os.sched_getaffinity(0)),
        load_average_before=load_before, load_average_after=load_after,
        rows=rows,
        command='python benchmarks/siam_vs_official.py ' + ' '.join(
            shlex.quote(a) for a in sys.argv[1:]))
    write_result(None, result, filename=args.out, not_printed=('rows',))


if __name__ == '__main__':
    main()
