"""GRM's tracker step against the official GRM tracker, side by side on this machine.

    python benchmarks/grm_vs_official.py --official_cmd "<command>" [--variant vitb_256] \
        [--rounds 12] [--warmup 2] [--weights bundle|random] [--out grm_vs_official.json]

Two persistent processes: this one runs ours (`GRMTracker.track`, the thin adapter over the
jitted `grm_jax.tracker_fns(config).step`: the frame goes to the device, the exact crop,
normalisation, the network, Hann-window argmax, map back and margin clip, the box back to the
host); `--official_cmd` starts the other, which drives the official tracker with the line
protocol of benchmarks/side_by_side.py.

Both trackers are initialised on frame 1 of ../shared's vot/bag and then, round by round, each
tracks the next frame in turn (ours, official, ours, ...), so both see the same load on a
shared machine. Each side decodes the frame outside its timed region; each times its step in
wall seconds and in its own process CPU seconds (all threads). `--warmup` rounds are untimed
(compilation). Reported: medians of each side, the median of the per-round ratios ours /
official, the load average before and after, and the largest box difference between the two
sides (with `--weights bundle`, both sides run the reference bundle's weights: ours converted
with `grm_jax.convert.from_official`, so the boxes should agree to parity tolerance; with
`random` ours is random and the difference means nothing). Writes
benchmarks/results/grm_vs_official.json (or --out). Started under `taskset -c K`, both processes
(the driver inherits the affinity) run on that one core: XLA's and PyTorch's thread pools size
themselves from the affinity mask, so that compares one thread against one thread; the number
of CPUs in the mask is recorded.
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
from configs.grm import get_config  # noqa: E402
from grm_jax.tracker import GRMTracker  # noqa: E402
from tracking.images import load_image  # noqa: E402

BUNDLE = REPO.parent / 'shared' / 'reference' / 'grm_vitb_256'


def _variables(config, weights: str):
    if weights == 'bundle':
        sys.path.insert(0, str(REPO / 'tests'))
        from helpers import reference_state_dict
        from grm_jax import convert
        return convert.from_official(reference_state_dict(BUNDLE), config)
    from grm_jax.model import init_variables
    return init_variables(config, jax.random.PRNGKey(0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--official_cmd', required=True,
                        help='command starting the official-tracker driver (line protocol)')
    parser.add_argument('--variant', default='vitb_256')
    parser.add_argument('--rounds', type=int, default=12, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--weights', choices=('bundle', 'random'), default='bundle')
    parser.add_argument('--out', default='grm_vs_official.json', help='file in benchmarks/results')
    args = parser.parse_args()
    if not BAG.is_dir():
        raise SystemExit(f'frames not found: {BAG}')
    paths = sorted(BAG.glob('*.jpg'))[:args.warmup + args.rounds + 1]
    if len(paths) < args.warmup + args.rounds + 1:
        raise SystemExit(f'{BAG}: {len(paths)} frames, need {args.warmup + args.rounds + 1}')
    init_box = (np.load(BUNDLE / 'track.npz')['init_box'] if args.weights == 'bundle'
                else np.array([292.23, 128.36, 145.96, 132.47]))

    config = get_config(args.variant)
    ours = GRMTracker(config, jax.device_put(_variables(config, args.weights)))
    official = Official(args.official_cmd)
    load_before = os.getloadavg()
    rows = []
    try:
        ours.initialize(load_image(paths[0]), init_box)
        official.init(paths[0], init_box)
        for i, path in enumerate(paths[1:]):
            frame = load_image(path)
            box_ours, wall_ours, cpu_ours = timed_track(ours, frame)
            box_official, wall_official, cpu_official = official.step(path)
            row = dict(frame=path.name, ours_wall_s=wall_ours, ours_cpu_s=cpu_ours,
                       official_wall_s=wall_official, official_cpu_s=cpu_official,
                       box_max_abs_diff_px=float(np.abs(box_ours - box_official).max()),
                       warmup=i < args.warmup)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        official.close()
    load_after = os.getloadavg()

    result = dict(
        variant=args.variant, frames='vot/bag', weights=args.weights, rounds=args.rounds,
        warmup=args.warmup,
        ours='GRMTracker.track (jitted grm_jax.tracker_fns step)',
        official_cmd=args.official_cmd,
        **summarize_rounds(rows, 'ours', 'box_max_abs_diff_px'),
        cpus_in_affinity_mask=len(os.sched_getaffinity(0)),
        load_average_before=load_before, load_average_after=load_after,
        rows=rows,
        command='python benchmarks/grm_vs_official.py ' + ' '.join(
            shlex.quote(a) for a in sys.argv[1:]))
    write_result(None, result, filename=args.out, not_printed=('rows',))


if __name__ == '__main__':
    main()
