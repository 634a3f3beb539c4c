"""Trains a tracker: `python train.py --config configs/grm.py:tiny --workdir DIR [--config.a.b=v]`.

The task is the make_task(config) of the tracker package config.package names
(tracking/plugins.py). Re-running with the same workdir
resumes from its newest checkpoint. SIGTERM or SIGINT (preemption, Ctrl-C) saves a checkpoint at
the next step boundary and exits with status 128 + signal (143 SIGTERM, 130 SIGINT), saying so on
stderr. A command-line or config error is one `train.py: error: ...` line, exit status 2. On a
multi-process job (JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID, or JAX_DISTRIBUTED_AUTO=1) every process runs this same command.
"""
from __future__ import annotations

import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'configs/<tracker>.py:<variant>; override fields with --config.a.b=value')
_WORKDIR = flags.DEFINE_string('workdir', None, 'output folder (checkpoints, TensorBoard, config)')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    if len(argv) > 1:
        from tracking.config import usage_error
        usage_error(argv[0], f'unexpected arguments: {argv[1:]}')
    from tracking.train.sharding import maybe_initialize_distributed
    maybe_initialize_distributed()
    from tracking.train.loop import train
    from tracking.train.tasks import make_task
    config = _CONFIG.value
    logging.info('config:\n%s', config)
    stopped = []
    state = train(config, _WORKDIR.value, make_task(config),
                  on_stop=lambda signum, step: stopped.append((signum, step)))
    if stopped:
        signum, step = stopped[0]
        print(f'{sys.argv[0]}: stopped by {signal.Signals(signum).name} after saving step {step} '
              f'in {os.path.join(_WORKDIR.value, "checkpoints")}; run the same command to '
              f'resume (exit status {128 + signum})', file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    logging.info('finished at step %d; workdir %s', int(state.step), _WORKDIR.value)


def parse_flags(argv):
    """absl flag parsing: any command-line or config error is one `train.py: error: ...` line
    on stderr and exit status 2 (tracking.config.parse_flags_or_exit)."""
    from tracking.config import parse_flags_or_exit
    return parse_flags_or_exit(argv)


if __name__ == '__main__':
    from tracking.logs import quiet
    quiet()
    app.run(main, flags_parser=parse_flags)
