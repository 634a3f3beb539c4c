"""Orbax checkpoints: standalone model variables and training-state checkpoints.

Two layouts, both real orbax directories:

* a *variables checkpoint* (`save_variables`): one PyTree `{'params': ..., 'batch_stats': ...}`
  written by `orbax.checkpoint.StandardCheckpointer` (what the official-checkpoint converters
  write);
* a *training workdir*: `workdir/checkpoints/<step>/` written by an
  `orbax.checkpoint.CheckpointManager` with two items per step,
  `variables` = `{'params': ..., <model_state collections, e.g. 'batch_stats'>}` and
  `training` = `{'step': int32 [], 'rng': uint32 [2], 'opt_state': ...}`.

`restore_variables` reads either: given a workdir (or its `checkpoints` folder) it loads only the
`variables` item of the latest step, so the optimizer state is never read.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_SUBDIR = 'checkpoints'
VARIABLES_ITEM = 'variables'
TRAINING_ITEM = 'training'
_ITEM_NAMES = (VARIABLES_ITEM, TRAINING_ITEM)


def save_variables(directory: str, variables: dict[str, Any]) -> None:
    """Writes `variables` ({'params': ..., 'batch_stats': ...}) as an orbax checkpoint.

    `directory` must not exist yet (orbax refuses to overwrite); it is created.
    """
    directory = os.path.abspath(directory)
    if os.path.exists(directory):
        raise FileExistsError(f'checkpoint directory already exists: {directory}')
    variables = {k: v for k, v in variables.items() if _has_leaves(v)}
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory, variables)
        checkpointer.wait_until_finished()


def restore_variables(directory: str) -> dict[str, Any]:
    """Loads {'params': ..., 'batch_stats': ...} from a variables checkpoint or a training workdir.

    Arrays come back as numpy arrays (host memory). A training workdir gives the latest step.
    'batch_stats' is always present ({} for a model without BatchNorm).
    Raises FileNotFoundError (one line naming the folder and what is wrong) for a missing or
    empty folder, a workdir / `checkpoints` folder without a finished step (only orbax's
    half-written `*.orbax-checkpoint-tmp-*` folders, say), and ValueError for a folder that
    orbax cannot read.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f'no checkpoint directory at {directory}')
    manager_dir = _find_manager_dir(directory)
    if manager_dir is None:
        _require_variables_checkpoint(directory)
    else:
        with ocp.CheckpointManager(manager_dir, item_names=_ITEM_NAMES,
                                   options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f'no finished checkpoint step in {manager_dir}')
        directory = os.path.join(manager_dir, str(step), VARIABLES_ITEM)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f'checkpoint step {step} in {manager_dir} has no '
                                    f'{VARIABLES_ITEM!r} item')
        logging.info('restoring variables of step %d from %s', step, manager_dir)
    with ocp.PyTreeCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(directory)
        tree = getattr(getattr(metadata, 'item_metadata', None), 'tree', None)
        if tree is None:
            raise ValueError(f'{directory}: not a readable orbax checkpoint (no tree metadata)')
        restored = checkpointer.restore(directory, args=_numpy_restore_args(tree))
    return _with_batch_stats(_to_numpy(restored))


_TMP_MARK = '.orbax-checkpoint-tmp'


def _require_variables_checkpoint(directory: str) -> None:
    """FileNotFoundError naming `directory` unless it looks like a finished orbax checkpoint
    (a `_METADATA` or `_CHECKPOINT_METADATA` file); says whether it is empty, holds only
    half-written steps, or is an empty `checkpoints/` workdir."""
    if any(os.path.isfile(os.path.join(directory, name))
           for name in ('_METADATA', '_CHECKPOINT_METADATA')):
        return
    if _TMP_MARK in os.path.basename(directory):
        raise FileNotFoundError(f'{directory} is a half-written orbax checkpoint (interrupted '
                                'save); use a finished one')
    for folder in (os.path.join(directory, CHECKPOINT_SUBDIR), directory):
        if not os.path.isdir(folder):
            continue
        names = sorted(os.listdir(folder))
        partial = [n for n in names if _TMP_MARK in n]
        if partial:
            raise FileNotFoundError(f'no finished checkpoint step in {folder}: only half-written '
                                    f'{", ".join(partial[:3])} (a save was interrupted)')
        if folder != directory and not names:
            raise FileNotFoundError(f'no checkpoint step in {folder} (empty)')
    if not os.listdir(directory):
        raise FileNotFoundError(f'no checkpoint in {directory} (empty folder)')
    raise FileNotFoundError(f'no checkpoint in {directory}: neither a variables checkpoint '
                            f'(_METADATA) nor a training workdir ({CHECKPOINT_SUBDIR}/<step>/)')


def check_variables_match(variables: dict, expected: dict, checkpoint: str, config_name: str,
                          shown: int = 3) -> None:
    """Raises ValueError when `variables` does not have the structure of `expected`.

    variables: a restored tree ({'params': ..., 'batch_stats': ...}, leaves with .shape);
    expected: the model's abstract tree (e.g. jax.eval_shape of its init; ShapeDtypeStruct
      leaves). Empty collections are ignored on both sides.
    The one-line message names the checkpoint and the config and lists up to `shown` keys
    missing from the checkpoint, unexpected in it, and with another shape.
    """
    got, want = _flat_shapes(variables), _flat_shapes(expected)
    order = lambda k: (not k.startswith('params/'), k)  # noqa: E731; params listed first
    missing = sorted((k for k in want if k not in got), key=order)
    unexpected = sorted((k for k in got if k not in want), key=order)
    reshaped = sorted((k for k in want if k in got and got[k] != want[k]), key=order)
    if not (missing or unexpected or reshaped):
        return

    def listing(keys, show=lambda k: k):
        more = f' ... ({len(keys)} in all)' if len(keys) > shown else ''
        return ', '.join(show(k) for k in keys[:shown]) + more

    parts = []
    if missing:
        parts.append(f'missing {listing(missing)}')
    if unexpected:
        parts.append(f'unexpected {listing(unexpected)}')
    if reshaped:
        parts.append('other shape ' + listing(
            reshaped, lambda k: f'{k} {list(got[k])} (model {list(want[k])})'))
    raise ValueError(f'checkpoint {checkpoint} does not fit config {config_name} (another '
                     f'tracker or variant?): {"; ".join(parts)}')


def _flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    """{'params/a/kernel': shape} of every leaf (paths joined with '/')."""
    from tracking.trees import path_names
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {'/'.join(path_names(path)): tuple(np.shape(leaf)) for path, leaf in flat}


class CheckpointManager:
    """Periodic training-state checkpoints in `workdir/checkpoints/<step>`.

    The train state is any object with fields step, params, model_state, opt_state, rng
    (`tracking.train.loop.TrainState`). Saving is asynchronous; call `wait()` or `close()`.
    """

    def __init__(self, workdir: str, keep: int, every_steps: int):
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
        self.every_steps = int(every_steps)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=int(keep) if keep and keep > 0 else None,
            save_interval_steps=max(1, self.every_steps),
            create=True)
        self._manager = ocp.CheckpointManager(self.directory, item_names=_ITEM_NAMES,
                                              options=options)

    def latest_step(self) -> int | None:
        """The newest finished step in the directory, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    def save(self, step: int, train_state, force: bool = False) -> bool:
        """Saves `train_state` as `step` if `step` is a multiple of every_steps (or `force`).

        Returns True if a save was started. Saving a step that already exists is a no-op.
        """
        step = int(step)
        if not (force or self.should_save(step)) or step in self._manager.all_steps():
            return False
        variables, training = _split_state(train_state)
        return self._manager.save(step, force=True, args=ocp.args.Composite(**{
            VARIABLES_ITEM: ocp.args.StandardSave(variables),
            TRAINING_ITEM: ocp.args.StandardSave(training),
        }))

    def restore_latest(self, target_abstract_state):
        """Restores the newest step into the structure/shardings of `target_abstract_state`.

        target_abstract_state: a train state whose leaves are jax.ShapeDtypeStruct (with
        sharding) or arrays. Returns (step, state) or None if there is no checkpoint.
        """
        step = self._manager.latest_step()
        if step is None:
            return None
        variables, training = _split_state(target_abstract_state)
        variables = jax.tree.map(ocp.utils.to_shape_dtype_struct, variables)
        training = jax.tree.map(ocp.utils.to_shape_dtype_struct, training)
        restored = self._manager.restore(step, args=ocp.args.Composite(**{
            VARIABLES_ITEM: ocp.args.StandardRestore(variables),
            TRAINING_ITEM: ocp.args.StandardRestore(training),
        }))
        state = _merge_state(target_abstract_state, restored[VARIABLES_ITEM],
                             restored[TRAINING_ITEM])
        if int(state.step) != step:
            raise ValueError(f'checkpoint {self.directory}/{step} holds train state step '
                             f'{int(state.step)}')
        return step, state

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def make_manager(workdir: str, keep: int, every_steps: int) -> CheckpointManager:
    """A CheckpointManager keeping `keep` checkpoints, saving every `every_steps` steps."""
    return CheckpointManager(workdir, keep, every_steps)


def _split_state(state) -> tuple[dict, dict]:
    variables = {'params': state.params}
    variables.update({k: v for k, v in state.model_state.items() if _has_leaves(v)})
    training = {'step': state.step, 'rng': state.rng}
    if _has_leaves(state.opt_state):
        training['opt_state'] = state.opt_state
    return variables, training


def _merge_state(template, variables: dict, training: dict):
    model_state = {k: variables.get(k, v) for k, v in template.model_state.items()}
    return template.replace(step=training['step'], rng=training['rng'],
                            params=variables['params'], model_state=model_state,
                            opt_state=training.get('opt_state', template.opt_state))


def _has_leaves(tree) -> bool:
    return len(jax.tree.leaves(tree)) > 0


def _find_manager_dir(directory: str) -> str | None:
    """The CheckpointManager folder for a workdir or a checkpoints folder, else None."""
    for candidate in (os.path.join(directory, CHECKPOINT_SUBDIR), directory):
        if os.path.isdir(candidate) and any(
                name.isdigit() and os.path.isdir(os.path.join(candidate, name))
                for name in os.listdir(candidate)):
            return candidate
    return None


def _numpy_restore_args(metadata_tree) -> ocp.args.PyTreeRestore:
    """Restore arguments that read every saved array onto this process's first device.

    Works whatever device topology wrote the checkpoint; the caller converts to numpy.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    is_leaf = lambda m: hasattr(m, 'shape') and hasattr(m, 'dtype')  # noqa: E731
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          metadata_tree, is_leaf=is_leaf)
    restore_args = jax.tree.map(
        lambda m: ocp.ArrayRestoreArgs(sharding=device, global_shape=m.shape, dtype=m.dtype),
        target)
    return ocp.args.PyTreeRestore(item=target, restore_args=restore_args)


def _with_batch_stats(variables: dict) -> dict:
    return {'batch_stats': {}, **variables}


def _to_numpy(tree):
    return jax.tree.map(np.asarray, tree)


def convert_main(argv, description: str, default_config: str, from_official) -> None:
    """Command line of the official-checkpoint converters (`python -m <tracker>.convert`).

    IN (a torch checkpoint, read without torch, or an .npz of key -> array) -> from_official ->
    an orbax variables checkpoint in OUT_DIR.
    """
    import argparse

    from tracking.config import load_config
    from tracking.torch_pickle import load_weights

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('checkpoint', help='official checkpoint file (or .npz of key -> array)')
    parser.add_argument('out_dir', help='output directory (orbax)')
    parser.add_argument('--config', default=default_config, help='config file[:variant]')
    args = parser.parse_args(argv)
    config = load_config(args.config)
    state_dict = load_weights(args.checkpoint)
    save_variables(args.out_dir, from_official(state_dict, config))
    print(f'converted {len(state_dict)} tensors from {args.checkpoint} ({args.config}) '
          f'-> {args.out_dir}')
