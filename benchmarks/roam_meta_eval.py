"""Does meta-learning work? The learned ROAM optimizer against SGD and Adam on held-out clips.

    python benchmarks/roam_meta_eval.py --workdir WORKDIR [--clips 16] [--tune_clips 16] [--no-oracle]

WORKDIR is a `train.py --config configs/roam.py:tiny` run (its config.json and latest
checkpoint). Every optimizer starts from the same model: the meta-learned theta0 after its
first step with the meta-learned lambda0 (roam.meta step 0); then the 5 update steps of the clip
(each on the previous 5 frames, filter size adapted) are taken by
  - the learned coordinate-wise LSTM (meta-trained),
  - optax.sgd(lr) and optax.adam(lr), lr tuned on a log grid with 0 on `tune_clips` *training*
    clips (synthetic train split, drawn as meta-training draws them: with the config's colour
    augmentation; the lr with the lowest mean look-ahead loss),
and each step is scored on a random future frame (the meta-objective's look-ahead loss, no
Random Filter Scaling: r = 1, as in tracking). Reported: the mean look-ahead loss of steps 1..5
over `clips` held-out clips (synthetic val split, as tracking sees them: no colour
augmentation unless --held_out_augment), per optimizer, and the same for the meta-
trained initial model with no further update ('none'). Also the untrained LSTM (the config's
initialisation) as a control. Paired per clip (every optimizer sees the same held-out clips from
the same start): learned minus each other optimizer, mean and standard error over clips
(`paired_learned_minus`); the claim 'learned beats tuned SGD and Adam' is made when
mean + 2 se < 0 against both. Writes benchmarks/results/roam_meta_eval_<platform>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

# Log grids, four rates per decade, with 0 (no update) in front: tuning may choose not to
# update. (Half-decade grids left SGD between 0.01 and 0.032, 0.007 apart on held-out clips.)
SGD_GRID = (0.0,) + tuple(10.0 ** e for e in np.arange(-4.0, 1.01, 0.25))
ADAM_GRID = (0.0,) + tuple(10.0 ** e for e in np.arange(-5.0, -0.49, 0.25))


def load_run(workdir: str):
    """(config, meta-params, vgg params) of a training workdir's latest checkpoint."""
    from roam.task import load_vgg
    from tracking.checkpoint import restore_variables

    with open(os.path.join(workdir, 'config.json')) as f:
        config = ml_collections.ConfigDict(json.load(f))
    variables = restore_variables(workdir)
    vgg = variables.get('vgg') or load_vgg(config, int(config.seed))
    return config, variables['params'], vgg


def clips(config, split: str, count: int, seed: int, augment: bool | None = None):
    """`count` clips (roam.clips.ClipSampler) of the synthetic `split`, as host batches.
    augment: train.colour_augment for these clips (None: the config's, as meta-training)."""
    from roam.clips import ClipSampler
    from tracking.data.synthetic import load_synthetic

    if augment is not None:
        config = ml_collections.ConfigDict(config.to_dict())
        config.train.colour_augment = bool(augment)
    sampler = ClipSampler([load_synthetic(split, config.data.roots.get('synthetic') or None)],
                          (1.0,), config, seed)
    return [sampler.sample(i) for i in range(count)]


def make_scorer(config, vgg):
    """jit(meta, clip, opt) -> look-ahead losses [T] of one clip with r = 1."""
    from roam import meta as rmeta
    from roam.vgg import preprocess, vgg_features

    feats_fn = jax.jit(lambda x: vgg_features(vgg, preprocess(x, config.model.rgb_mean),
                                              tuple(config.model.vgg_channels)))

    def features(clip):
        return feats_fn(clip['crops'])

    def scorer(opt_factory):
        @jax.jit
        def run(meta, feats, labels, boxes, deltas, hyper):
            scales = jax.tree_util.tree_map(jnp.ones_like, meta['theta0'])
            c = rmeta.ClipData(feats, labels, boxes, deltas, scales)
            opt = opt_factory(meta, hyper)
            _, aux = rmeta.meta_loss(meta, c, config, opt=opt)
            return aux['losses'][:, 2] + aux['losses'][:, 3]
        return run
    return features, scorer


def per_clip_look(run, meta, feats, clip_list, hyper) -> np.ndarray:
    """[clips] mean look-ahead loss of steps 1..5 per clip."""
    vals = [np.asarray(run(meta, f, jnp.asarray(c['labels']), jnp.asarray(c['boxes']),
                           jnp.asarray(c['deltas']), jnp.float32(hyper)))
            for f, c in zip(feats, clip_list)]
    return np.array([v[1:].mean() for v in vals], np.float64)


def mean_look(run, meta, feats, clip_list, hyper) -> float:
    return float(np.mean(per_clip_look(run, meta, feats, clip_list, hyper)))


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """a - b per clip: mean, standard error of the mean (sample std / sqrt(n)), t = mean / se,
    and how many clips a wins (a < b)."""
    d = np.asarray(a) - np.asarray(b)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float('nan')
    return dict(mean=float(d.mean()), se=se, t=float(d.mean() / se) if se > 0 else float('nan'),
                wins=int(np.sum(d < 0)), clips=int(len(d)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--clips', type=int, default=16)
    parser.add_argument('--tune_clips', type=int, default=16)
    parser.add_argument('--out', default='')
    parser.add_argument('--oracle', action=argparse.BooleanOptionalAction, default=True,
                        help='also SGD/Adam with the lr best on the held-out clips (control)')
    parser.add_argument('--held_out_augment', action='store_true',
                        help="held-out clips with the config's colour augmentation")
    args = parser.parse_args(argv)
    from benchmarks.common import write_result
    from roam import meta as rmeta

    start = time.perf_counter()
    config, meta, vgg = load_run(args.workdir)
    meta = jax.tree_util.tree_map(jnp.asarray, meta)
    lopt = rmeta.make_lopt(config)
    features, scorer = make_scorer(config, vgg)
    # Tuning clips are drawn as meta-training draws them (the config's colour augmentation);
    # held-out clips as tracking sees them (no augmentation) unless --held_out_augment.
    tune = clips(config, 'train', args.tune_clips, seed=12345)
    held = clips(config, 'val', args.clips, seed=54321,
                 augment=None if args.held_out_augment else False)
    tune_f = [features(c) for c in tune]
    held_f = [features(c) for c in held]

    ex = optax.with_extra_args_support
    runs = {
        'learned': scorer(lambda m, h: None),
        'sgd': scorer(lambda m, h: ex(optax.sgd(h))),
        'adam': scorer(lambda m, h: ex(optax.adam(h))),
        'none': scorer(lambda m, h: ex(optax.sgd(0.0))),
    }
    result = dict(workdir=os.path.abspath(args.workdir), held_out_clips=args.clips,
                  colour_augment=dict(tuning=bool(config.train.get('colour_augment', False)),
                                      held_out=bool(args.held_out_augment and config.train.get(
                                          'colour_augment', False))),
                  tuning_clips=args.tune_clips, held_out_split='synthetic val',
                  tuning_split='synthetic train', metric='mean look-ahead loss, steps 1..5')
    tuning = {}
    for name, grid in (('sgd', SGD_GRID), ('adam', ADAM_GRID)):
        scores = {float(lr): mean_look(runs[name], meta, tune_f, tune, lr) for lr in grid}
        finite = {lr: s for lr, s in scores.items() if np.isfinite(s)}
        best = min(finite, key=finite.get)
        tuning[name] = dict(grid=scores, best_lr=best)
    result['tuning'] = tuning
    per_clip = {
        'learned': per_clip_look(runs['learned'], meta, held_f, held, 0.0),
        'sgd': per_clip_look(runs['sgd'], meta, held_f, held, tuning['sgd']['best_lr']),
        'adam': per_clip_look(runs['adam'], meta, held_f, held, tuning['adam']['best_lr']),
        'none': per_clip_look(runs['none'], meta, held_f, held, 0.0),
    }
    untrained = dict(meta, meta_opt=lopt.init(jax.random.PRNGKey(0)))
    per_clip['untrained_lstm'] = per_clip_look(runs['learned'], untrained, held_f, held, 0.0)
    held_scores = {k: float(v.mean()) for k, v in per_clip.items()}
    result['held_out'] = held_scores
    # Paired per clip (the same clips, the same start): learned - other; negative = learned
    # lower. The claim needs mean + 2 se < 0 against both tuned baselines.
    result['paired_learned_minus'] = {k: paired(per_clip['learned'], per_clip[k])
                                      for k in ('sgd', 'adam', 'none', 'untrained_lstm')}
    if args.oracle:
        # Control: SGD and Adam with the lr that is best on the held-out clips themselves (an
        # upper bound for a tuned baseline; the training clips can favour other rates when
        # theta0 fits them already).
        oracle = {}
        for name, grid in (('sgd', SGD_GRID), ('adam', ADAM_GRID)):
            scores = {}
            for lr in grid:
                scores[float(lr)] = per_clip_look(runs[name], meta, held_f, held, lr)
                if not np.isfinite(scores[float(lr)].mean()):
                    break                               # larger rates diverge as well
            best = min((lr for lr in scores if np.isfinite(scores[lr].mean())),
                       key=lambda lr: scores[lr].mean())
            per_clip[f'{name}_oracle'] = scores[best]
            oracle[name] = dict(best_lr=best, grid={lr: float(v.mean())
                                                    for lr, v in scores.items()})
            result['paired_learned_minus'][f'{name}_oracle'] = paired(per_clip['learned'],
                                                                     scores[best])
            held_scores[f'{name}_oracle'] = float(scores[best].mean())
        result['oracle_tuning_on_held_out'] = oracle
    result['per_clip'] = {k: v.tolist() for k, v in per_clip.items()}
    result['learned_beats_sgd_and_adam'] = bool(
        held_scores['learned'] < min(held_scores['sgd'], held_scores['adam']))
    result['learned_beats_sgd_and_adam_2se'] = bool(all(
        p['mean'] + 2 * p['se'] < 0 for k, p in result['paired_learned_minus'].items()
        if k in ('sgd', 'adam')))
    result['seconds'] = time.perf_counter() - start
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    else:
        write_result('roam_meta_eval', result)
    return result


if __name__ == '__main__':
    main()
