"""VOT short-term evaluation, one name for its parts (kept for existing imports).

Evaluation reads one way: protocol -> slots and steps -> result files -> metrics. The parts:

* tracking.eval.region: regions (codes, rectangles, polygons), the raster overlap rule, the
  exact geometric overlap, pysot's init box of a polygon.
* tracking.eval.vot_protocol: the supervised reset protocol as a per-sequence state machine
  (`ResetProtocol`), used by the sequential `run_supervised` and by tracking.eval.batched.
* tracking.eval.vot_scoring: accuracy, robustness and EAO (PySOT's conventions).
* tracking.eval.results: the result files (`<tracker>/baseline/<seq>/<seq>_001.txt`).

Every name this module had is re-exported here under its old name.
"""
from __future__ import annotations

from tracking.eval.region import (CODE_FAILURE, CODE_INIT, CODE_SKIP, _c_round, clip_polygon,
                                  init_box_from_region, is_code, polygon_area, rasterize,
                                  region_overlap, to_polygon, usable_region)
from tracking.eval.results import Record, atomic_write_text
from tracking.eval.results import find_vot_result_file as find_result_file
from tracking.eval.results import format_vot_record as format_record
from tracking.eval.results import parse_vot_records as parse_records
from tracking.eval.results import read_vot_records as read_records
from tracking.eval.results import vot_is_done as is_done
from tracking.eval.results import vot_result_path as result_path
from tracking.eval.results import vot_time_path as time_path
from tracking.eval.results import write_vot_records as write_records
from tracking.eval.vot_protocol import (SKIP_INITIALIZE, ResetProtocol, ground_truth_regions,
                                        image_size, run_supervised)
from tracking.eval.vot_scoring import (BURNIN, CONVENTIONS, DEFAULT_YEAR, EAO_INTERVALS,
                                       RELIABILITY_SENSITIVITY, accuracy_robustness,
                                       curve_from_fragments, eao, eao_fragments, eao_interval,
                                       expected_overlap_curve, failure_frames, score_sequence,
                                       sequence_overlaps, vot_summary)

__all__ = [
    'BURNIN', 'CODE_FAILURE', 'CODE_INIT', 'CODE_SKIP', 'CONVENTIONS', 'DEFAULT_YEAR',
    'EAO_INTERVALS', 'RELIABILITY_SENSITIVITY', 'SKIP_INITIALIZE', 'Record', 'ResetProtocol',
    'accuracy_robustness', 'atomic_write_text', 'clip_polygon', 'curve_from_fragments', 'eao',
    'eao_fragments', 'eao_interval', 'expected_overlap_curve', 'failure_frames',
    'find_result_file', 'format_record', 'ground_truth_regions', 'image_size',
    'init_box_from_region', 'is_code', 'is_done', 'parse_records', 'polygon_area', 'rasterize',
    'read_records', 'region_overlap', 'result_path', 'run_supervised', 'score_sequence',
    'sequence_overlaps', 'time_path', 'to_polygon', 'usable_region', 'vot_summary',
    'write_records',
]
