"""Trains a tracker: `python train.py --config configs/grm.py:tiny --workdir DIR [--config.a.b=v]`.

The task comes from config.tracker (tracking/train/tasks.py). Re-running with the same workdir
resumes from its newest checkpoint. On a multi-process job (JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID, or JAX_DISTRIBUTED_AUTO=1) every process runs this same command.
"""
from __future__ import annotations

import logging as std_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'configs/<tracker>.py:<variant>; override fields with --config.a.b=value')
_WORKDIR = flags.DEFINE_string('workdir', None, 'output folder (checkpoints, TensorBoard, config)')
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietOrbax:
    """Log filter dropping orbax's INFO chatter (dozens of lines per checkpoint)."""

    def filter(self, record) -> bool:
        return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    logging.get_absl_handler().addFilter(_QuietOrbax())
    from tracking.train.sharding import maybe_initialize_distributed
    maybe_initialize_distributed()
    from tracking.train.loop import train
    from tracking.train.tasks import make_task
    config = _CONFIG.value
    logging.info('config:\n%s', config)
    state = train(config, _WORKDIR.value, make_task(config))
    logging.info('finished at step %d; workdir %s', int(state.step), _WORKDIR.value)


def parse_flags(argv):
    """absl flag parsing that turns an unknown --config.<key> into a one-line error naming it."""
    try:
        return flags.FLAGS(argv)
    except (KeyError, AttributeError) as error:
        unknown = _unknown_config_override(argv)
        if unknown is None:
            raise
        key, arg = unknown
        sys.exit(f'{argv[0]}: unknown config key {key!r} (from {arg}); '
                 f'no such field in the config file ({error})')


def _unknown_config_override(argv):
    """(dotted key, argument) of the first --config.<key> override the config lacks, or None."""
    from tracking.config import load_config
    spec, overrides = None, []
    for i, arg in enumerate(argv[1:], start=1):
        if arg == '--config' and i + 1 < len(argv):
            spec = argv[i + 1]
        elif arg.startswith('--config='):
            spec = arg.split('=', 1)[1]
        elif arg.startswith('--config.'):
            overrides.append((arg[len('--config.'):].split('=', 1)[0], arg))
    if spec is None:
        return None
    config = load_config(spec)
    for key, arg in overrides:
        node = config
        for part in key.split('.'):
            if not hasattr(node, 'keys') or part not in node:
                return key, arg
            node = node[part]
    return None


if __name__ == '__main__':
    from tracking.logs import quiet
    quiet()
    app.run(main, flags_parser=parse_flags)
