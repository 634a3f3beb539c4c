"""Success / precision plots (PNG) of several trackers on one benchmark.

Uses matplotlib's Agg canvas directly (no pyplot), so importing this module never changes the
global matplotlib backend. Summaries are the dicts of `tracking.eval.metrics.*_summary`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_LINE_STYLES = ('-', '--', '-.', ':')


def _thresholds(summary: Mapping, curve_key: str) -> np.ndarray:
    """x values of a curve: the summary's own `*_thresholds`, else inferred from its length."""
    explicit = summary.get(curve_key.replace('_curve', '_thresholds'))
    if explicit is not None:
        return np.asarray(explicit, np.float64)
    n = len(summary[curve_key])
    if curve_key == 'success_curve':
        return np.linspace(0.0, 1.0, n)
    top = 50.0 if curve_key == 'precision_curve' else 0.5
    return np.linspace(0.0, top, n)


def _score(summary: Mapping, key: str) -> float:
    if key == 'auc' and 'auc' not in summary:
        key = 'ao'  # GOT-10k summaries rank by AO.
    return float(summary[key])


def sequence_count(summaries: Mapping[str, Mapping]) -> str:
    """'98 sequences' from the summaries' num_sequences (the sequences actually scored);
    '95-98 sequences' when trackers were scored on different numbers; '' when none says."""
    counts = sorted({int(s['num_sequences']) for s in summaries.values()
                     if s.get('num_sequences') is not None})
    if not counts:
        return ''
    span = str(counts[0]) if len(counts) == 1 else f'{counts[0]}-{counts[-1]}'
    return f'{span} sequence' + ('' if counts == [1] else 's')


def plot_title(kind: str, title: str, summaries: Mapping[str, Mapping]) -> str:
    """'<kind> on <title> (<n> sequences)', e.g. 'Success plots on OTB100 (98 sequences)'."""
    text = f'{kind} on {title}' if title else kind
    count = sequence_count(summaries)
    return f'{text} ({count})' if count else text


def curve_figure(summaries: Mapping[str, Mapping], curve_key: str, score_key: str,
                 xlabel: str, ylabel: str, title: str) -> Figure | None:
    """One figure of `curve_key` for every tracker that has it (None if none has), legend
    "name [score]" sorted best first, placed outside the axes on the right so that it never
    covers a curve. `title` is the full title (see `plot_title`)."""
    entries = [(name, s) for name, s in summaries.items() if s.get(curve_key) is not None]
    if not entries:
        return None
    entries.sort(key=lambda e: _score(e[1], score_key), reverse=True)
    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, summary) in enumerate(entries):
        x = _thresholds(summary, curve_key)
        label = f'{name} [{_score(summary, score_key):.3f}]'
        ax.plot(x, np.asarray(summary[curve_key]), _LINE_STYLES[(i // 10) % 4], label=label,
                linewidth=1.5)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0.0, 1.0),
           xlim=(float(x[0]), float(x[-1])))
    ax.grid(True, alpha=0.4)
    # Outside the axes (right of them): savefig(bbox_inches='tight') widens the image to fit it.
    ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              fontsize='small')
    return fig


def _plot_curves(summaries: Mapping[str, Mapping], curve_key: str, score_key: str,
                 xlabel: str, ylabel: str, title: str, path: Path) -> Path | None:
    fig = curve_figure(summaries, curve_key, score_key, xlabel, ylabel, title)
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    # The title also goes into the PNG's metadata (a tEXt 'Title' chunk).
    fig.savefig(path, dpi=100, bbox_inches='tight', metadata={'Title': title})
    return path


def plot_success_precision(summaries: Mapping[str, Mapping], out_png_prefix,
                           title: str) -> list[Path]:
    """Writes `<prefix>_success.png`, `<prefix>_precision.png` and, when the summaries carry a
    normalised precision curve, `<prefix>_norm_precision.png`.

    title: the benchmark as it should read, e.g. 'OTB100'; the plots are titled
      'Success plots on OTB100 (98 sequences)' with the number of sequences actually scored
      (the summaries' num_sequences), not a nominal size.

    summaries: {tracker name: summary dict with 'success_curve' and 'auc' (or 'ao' for GOT-10k),
      optionally 'precision_curve'/'precision' and 'norm_precision_curve'/'norm_precision'}.
    Legends read "name [score]" sorted by that score, best first. Returns the written paths.
    """
    if not summaries:
        raise ValueError('no summaries to plot')
    prefix = str(out_png_prefix)
    plots = (
        ('success_curve', 'auc', 'Overlap threshold', 'Success rate', 'Success plots',
         '_success.png'),
        ('precision_curve', 'precision', 'Location error threshold (pixels)', 'Precision',
         'Precision plots', '_precision.png'),
        ('norm_precision_curve', 'norm_precision', 'Normalised location error threshold',
         'Normalised precision', 'Normalised precision plots', '_norm_precision.png'),
    )
    written = []
    for curve_key, score_key, xlabel, ylabel, kind, suffix in plots:
        path = _plot_curves(summaries, curve_key, score_key, xlabel, ylabel,
                            plot_title(kind, title, summaries), Path(prefix + suffix))
        if path is not None:
            written.append(path)
    return written
