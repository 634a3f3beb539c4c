"""Plots (tracking/eval/plots.py) and text/JSON reports (tracking/eval/report.py)."""
import json

import numpy as np
import pytest

from tracking.eval import metrics, plots, report

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
GT = np.array([[0.0, 0.0, 10.0, 10.0]] * 4)


def _ope_summaries():
    good = metrics.ope_sequence(GT, GT)
    bad = metrics.ope_sequence(GT + [[0, 0, 0, 0], [5, 0, 0, 0], [30, 0, 0, 0], [3, 3, 0, 0]],
                               GT)
    return ({'good': {'s': good}, 'bad': {'s': bad}},
            {'bad': metrics.ope_summary({'s': bad}), 'good': metrics.ope_summary({'s': good})})


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE


def test_ope_plots_written(tmp_path):
    _, summaries = _ope_summaries()
    paths = plots.plot_success_precision(summaries, tmp_path / 'otb', 'OTB')
    assert [p.name for p in paths] == ['otb_success.png', 'otb_precision.png',
                                       'otb_norm_precision.png']
    for path in paths:
        _assert_png(path)


def test_got10k_success_plot_only(tmp_path):
    seq = metrics.got10k_sequence(GT, GT)
    paths = plots.plot_success_precision({'trk': metrics.got10k_summary({'s': seq})},
                                         tmp_path / 'sub' / 'got', 'GOT-10k')
    assert [p.name for p in paths] == ['got_success.png']
    _assert_png(paths[0])


def test_format_table_sorted_and_aligned():
    _, summaries = _ope_summaries()
    table = report.format_table(summaries, 'otb')
    lines = table.splitlines()
    assert lines[1].split() == ['Tracker', 'AUC', 'P@20', 'NormP@0.2', '#seq']
    assert lines[3].startswith('good') and lines[4].startswith('bad')   # best AUC first
    assert f"{summaries['good']['auc']:.3f}" in lines[3]
    assert len(lines[3]) == len(lines[4])
    got = report.format_table({'t': {'ao': 0.5, 'sr50': 0.6, 'sr75': float('nan')}}, 'GOT-10k')
    assert got.splitlines()[1].split()[:4] == ['Tracker', 'AO', 'SR0.5', 'SR0.75']
    assert '0.500' in got and 'nan' in got


def test_write_metrics_json_is_strict(tmp_path):
    per_sequence, summaries = _ope_summaries()
    per_sequence['got'] = {'s': metrics.got10k_sequence(GT, GT + [[np.nan] * 4] * 4)}
    path = report.write_metrics_json(tmp_path / 'm.json', per_sequence, summaries)
    data = json.loads(path.read_text())   # strict: NaN written as null
    assert data['summaries']['good']['auc'] == pytest.approx(20 / 21)
    assert len(data['per_sequence']['good']['s']['success_curve']) == 21
    assert data['per_sequence']['got']['s']['ao'] is None


def _png_title(path):
    from PIL import Image
    with Image.open(path) as image:
        return image.info.get('Title')


def test_plot_titles_name_the_scored_sequence_count(tmp_path):
    _, summaries = _ope_summaries()
    for summary in summaries.values():
        assert summary['num_sequences'] == 1
        summary['num_sequences'] = 98  # e.g. OTB100 with two sequences missing
    paths = plots.plot_success_precision(summaries, tmp_path / 'otb', 'OTB100')
    titles = [_png_title(p) for p in paths]
    assert titles == ['Success plots on OTB100 (98 sequences)',
                      'Precision plots on OTB100 (98 sequences)',
                      'Normalised precision plots on OTB100 (98 sequences)']
    summaries['bad']['num_sequences'] = 95
    assert plots.plot_title('Success plots', 'LaSOT', summaries) == \
        'Success plots on LaSOT (95-98 sequences)'
    del summaries['bad']['num_sequences'], summaries['good']['num_sequences']
    assert plots.plot_title('Success plots', 'LaSOT', summaries) == 'Success plots on LaSOT'


def test_legend_lies_outside_the_axes():
    _, summaries = _ope_summaries()
    summaries = {f'tracker_{i}': summaries['good' if i % 2 else 'bad'] for i in range(12)}
    fig = plots.curve_figure(summaries, 'success_curve', 'auc', 'x', 'y', 'title')
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert len(ax.get_legend().get_texts()) == 12
    assert legend.x0 >= axes.x1  # entirely to the right: it cannot cover a curve
