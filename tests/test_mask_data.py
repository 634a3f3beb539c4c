"""Training data with target masks: COCO RLE / polygon decoding, the COCO and YouTube-VOS
readers on small fake trees in their on-disk layouts, the index's mask storage, the pair
pipeline's search-crop masks and the synthetic dataset's masks (version 1.2.0)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tracking.data import masks as masks_lib
from tracking.data.datasets import load_training_index
from tracking.data.index import SequenceTable
from tracking.data.sequence import Sequence


# -- RLE and polygons ---------------------------------------------------------------------------

def test_rle_counts_decode_column_major():
    # 2 background, 3 object, 4 background pixels, down the columns of a 3 x 3 mask.
    mask = masks_lib.rle_decode([2, 3, 4], 3, 3)
    np.testing.assert_array_equal(mask, [[0, 1, 0], [0, 1, 0], [1, 0, 0]])
    assert mask.dtype == np.uint8
    with pytest.raises(masks_lib.MaskError, match='covers 8 pixels'):
        masks_lib.rle_decode([2, 3, 3], 3, 3)


def test_rle_compressed_strings_by_hand():
    # One character per small count; from the fourth count on the stored value is the
    # difference to the count two places before: '2' = 5 - 3.
    np.testing.assert_array_equal(masks_lib.rle_string_to_counts('232'), [2, 3, 2])
    np.testing.assert_array_equal(masks_lib.rle_string_to_counts('2342'), [2, 3, 4, 5])
    # 'M' = 48 + 29: 5 bits 11101 with the sign bit (0x10) set -> -3, so 2 = 5 - 3.
    np.testing.assert_array_equal(masks_lib.rle_string_to_counts('152M'), [1, 5, 2, 2])
    # 'X' = 48 + 40: value 8 with the continuation bit 0x20; '1' adds 1 << 5 -> 40.
    np.testing.assert_array_equal(masks_lib.rle_string_to_counts('X1'), [40])
    np.testing.assert_array_equal(masks_lib.rle_decode('252', 3, 3),
                                  masks_lib.rle_decode([2, 5, 2], 3, 3))
    with pytest.raises(masks_lib.MaskError, match='ends inside a count'):
        masks_lib.rle_string_to_counts('X')


def test_polygon_fills_pixels_whose_centres_are_inside():
    square = [2, 2, 6, 2, 6, 6, 2, 6]          # covers pixels 2..5 on both axes
    mask = masks_lib.polygons_to_mask([square], 8, 8)
    expected = np.zeros((8, 8), np.uint8)
    expected[2:6, 2:6] = 1
    np.testing.assert_array_equal(mask, expected)
    # Two rings: their union; a ring with fewer than 3 points adds nothing.
    other = [5, 5, 8, 5, 8, 8, 5, 8]
    union = masks_lib.polygons_to_mask([square, other, [1, 1, 2, 2]], 8, 8)
    expected[5:8, 5:8] = 1
    np.testing.assert_array_equal(union, expected)
    # A right triangle of legs 40: area 800, the raster within its perimeter of it.
    tri = masks_lib.polygons_to_mask([[0, 0, 40, 0, 0, 40]], 48, 48)
    assert abs(int(tri.sum()) - 800) < 60 and tri[0, 0] == 1 and tri[39, 39] == 0


# -- fake COCO tree -----------------------------------------------------------------------------

def _coco_tree(root: Path):
    (root / 'annotations').mkdir(parents=True)
    (root / 'train2017').mkdir()
    for name in ('a.jpg', 'b.jpg'):
        cv2.imwrite(str(root / 'train2017' / name), np.full((6, 8, 3), 90, np.uint8))
    images = [dict(id=10, file_name='a.jpg', width=8, height=6),
              dict(id=11, file_name='b.jpg', width=8, height=6)]
    poly = [[1, 1, 4, 1, 4, 3, 1, 3]]                      # pixels x 1..3, y 1..2
    rle_mask = np.zeros((6, 8), np.uint8)
    rle_mask[2:5, 5:7] = 1
    flat = rle_mask.T.reshape(-1)                           # column-major
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
    counts = np.diff(np.concatenate([[0], change])).tolist()
    if flat[0]:
        counts = [0] + counts
    counts = [c for c in counts if c] if not flat[0] else counts
    assert sum(counts) == 48
    annotations = [
        dict(id=1, image_id=10, bbox=[1, 1, 3, 2], iscrowd=0, category_id=1, segmentation=poly),
        dict(id=2, image_id=10, bbox=[5, 2, 2, 3], iscrowd=0, category_id=1,
             segmentation=dict(size=[6, 8], counts=counts)),
        dict(id=3, image_id=11, bbox=[0, 0, 2, 2], iscrowd=0, category_id=2,
             segmentation=dict(size=[6, 8], counts='X18')),  # 40 background, 8 object
        dict(id=4, image_id=11, bbox=[3, 3, 2, 2], iscrowd=0, category_id=2),
        dict(id=5, image_id=11, bbox=[0, 0, 8, 6], iscrowd=1, category_id=2,
             segmentation=dict(size=[6, 8], counts=[48])),
    ]
    (root / 'annotations' / 'instances_train2017.json').write_text(
        json.dumps(dict(images=images, annotations=annotations)))
    return rle_mask


def test_coco_index_stores_and_decodes_masks(tmp_path):
    rle_mask = _coco_tree(tmp_path / 'coco')
    index = load_training_index('coco', tmp_path / 'coco', cache=tmp_path / 'cache')
    assert [index.name(s) for s in range(len(index))] == ['coco_1', 'coco_2', 'coco_3',
                                                          'coco_4']
    assert index.has_masks and index.meta['masks'] is True
    # Stored as flat memory-mapped arrays (one file per array, read on demand).
    assert isinstance(index.mapped['mask_values'], np.memmap)
    assert index.mapped['mask_kind'].tolist() == [1, 2, 2, 0]
    polygon = np.zeros((6, 8), np.uint8)
    polygon[1:3, 1:4] = 1
    np.testing.assert_array_equal(index.mask(0, 0), polygon)
    np.testing.assert_array_equal(index.mask(1, 0), rle_mask)
    # Column-major: 40 background pixels = columns 0..5 and rows 0..3 of column 6.
    last = np.zeros((6, 8), np.uint8)
    last[4:, 6] = 1
    last[:, 7] = 1
    np.testing.assert_array_equal(index.mask(2, 0), last)
    assert index.mask(3, 0) is None
    # Reopening reads the same folder (no rebuild) and the same masks.
    again = load_training_index('coco', tmp_path / 'coco', cache=tmp_path / 'cache')
    assert again.folder == index.folder
    np.testing.assert_array_equal(again.mask(1, 0), rle_mask)


def test_coco_bad_rle_names_annotation(tmp_path):
    _coco_tree(tmp_path / 'coco')
    path = tmp_path / 'coco' / 'annotations' / 'instances_train2017.json'
    data = json.loads(path.read_text())
    data['annotations'][1]['segmentation']['counts'] = [2, 3]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r'annotation 2: bad segmentation.*covers 5 pixels'):
        load_training_index('coco', tmp_path / 'coco', cache=tmp_path / 'cache')


# -- fake YouTube-VOS tree ----------------------------------------------------------------------

def _write_label_png(path: Path, labels: np.ndarray):
    image = Image.fromarray(labels.astype(np.uint8), mode='P')
    palette = [0, 0, 0, 236, 95, 103, 249, 145, 87] + [0] * (256 * 3 - 9)
    image.putpalette(palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _youtube_vos_tree(root: Path) -> dict:
    meta = {'videos': {
        'vid_b': {'objects': {'1': {'category': 'cat', 'frames': ['00000', '00005']}}},
        'vid_a': {'objects': {
            '2': {'category': 'dog', 'frames': ['00000', '00005', '00010']},
            '1': {'category': 'person', 'frames': ['00005', '00010']}}},
    }}
    (root / 'train').mkdir(parents=True)
    (root / 'train' / 'meta.json').write_text(json.dumps(meta))
    labels = {}
    for video, frames in (('vid_a', ('00000', '00005', '00010')), ('vid_b', ('00000', '00005'))):
        for k, frame in enumerate(frames):
            lab = np.zeros((12, 16), np.uint8)
            if video == 'vid_a':
                if frame != '00010':
                    lab[2 + k:6 + k, 3:8] = 2                 # object 2, absent on 00010
                lab[8:11, 10 + k:14] = 1
            else:
                lab[1:4, 1:4 + k] = 1
            labels[video, frame] = lab
            _write_label_png(root / 'train' / 'Annotations' / video / f'{frame}.png', lab)
            jpg = root / 'train' / 'JPEGImages' / video / f'{frame}.jpg'
            jpg.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(jpg), np.full((12, 16, 3), 50 + 10 * k, np.uint8))
    return labels


def test_label_png_reads_object_ids_not_colours(tmp_path):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    _write_label_png(tmp_path / 'x.png', labels)
    np.testing.assert_array_equal(masks_lib.read_label_png(tmp_path / 'x.png'), labels)
    with pytest.raises(masks_lib.MaskError, match='mask file not found'):
        masks_lib.read_label_png(tmp_path / 'absent.png')


def test_youtube_vos_index_and_eager_reader(tmp_path):
    root = tmp_path / 'ytvos'
    labels = _youtube_vos_tree(root)
    index = load_training_index('youtube_vos', root, cache=tmp_path / 'cache')
    names = [index.name(s) for s in range(len(index))]
    assert names == ['vid_a_1', 'vid_a_2', 'vid_b_1']
    a2 = names.index('vid_a_2')
    np.testing.assert_array_equal(index.boxes(a2)[:2], [[3, 2, 5, 4], [3, 3, 5, 4]])
    assert np.isnan(index.boxes(a2)[2]).all()
    assert index.visible(a2).tolist() == [True, True, False]
    assert index.frame_path(a2, 1) == str(root / 'train/JPEGImages/vid_a/00005.jpg')
    for s, name in enumerate(names):
        video, oid = name.rsplit('_', 1)
        frames = {'vid_a_1': ('00005', '00010'), 'vid_a_2': ('00000', '00005', '00010'),
                  'vid_b_1': ('00000', '00005')}[name]
        for i, frame in enumerate(frames):
            np.testing.assert_array_equal(index.mask(s, i),
                                          (labels[video, frame] == int(oid)).astype(np.uint8))
    assert index.frame(0, 0).shape == (12, 16, 3)
    # The eager reader gives the same boxes and masks.
    from tracking.data.datasets import load_training_set
    eager = load_training_set('youtube_vos', root)
    assert [s.name for s in eager] == names
    table = SequenceTable(eager)
    for s in range(len(eager)):
        np.testing.assert_array_equal(eager[s].boxes, index.boxes(s))
        for i in range(len(eager[s])):
            np.testing.assert_array_equal(table.mask(s, i), index.mask(s, i))


def test_youtube_vos_missing_png_is_named(tmp_path):
    root = tmp_path / 'ytvos'
    _youtube_vos_tree(root)
    (root / 'train' / 'Annotations' / 'vid_b' / '00005.png').unlink()
    with pytest.raises(masks_lib.MaskError, match=r'vid_b[/\\]00005\.png'):
        load_training_index('youtube_vos', root, cache=tmp_path / 'cache')


# -- pair pipeline ------------------------------------------------------------------------------

def _data_config(flip: float):
    import ml_collections
    aug = dict(shift=0.0, scale=0.0, blur=0.0, flip=0.0, color=0.0)
    return ml_collections.ConfigDict(dict(
        neg=0.0, gray=0.0, template=dict(aug),
        search=dict(aug, shift=30.0, scale=0.15, flip=flip)))


def _bright_target_sequence():
    """A bright L-shaped target on a dark frame; its mask is exactly the bright pixels."""
    frames, masks, boxes = [], [], []
    for t in range(4):
        frame = np.full((120, 140, 3), 20, np.uint8)
        mask = np.zeros((120, 140), np.uint8)
        x, y = 40 + 5 * t, 30 + 3 * t
        mask[y:y + 40, x:x + 12] = 1
        mask[y + 28:y + 40, x:x + 34] = 1
        frame[mask > 0] = 230
        frames.append(frame)
        masks.append(mask)
        boxes.append([x, y, 34, 40])
    return Sequence('L', np.stack(frames), np.asarray(boxes, np.float64),
                    extra={'masks': np.stack(masks)})


@pytest.mark.parametrize('flip', [0.0, 1.0])
def test_pair_search_mask_follows_the_crop(flip):
    from tracking.data.pysot_pairs import PysotPairSampler
    seq = _bright_target_sequence()
    config = _data_config(flip)
    with_masks = PysotPairSampler([[seq]], (1.0,), (3,), config, 127, 255, seed=3, masks=True)
    plain = PysotPairSampler([[seq]], (1.0,), (3,), config, 127, 255, seed=3)
    for k in range(4):
        out = with_masks.sample(k)
        ref = plain.sample(k)
        for key in ref:   # masks draw no random number: same pairs, bit for bit
            np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
        assert out['has_mask'] == 1 and out['search_mask'].shape == (255, 255)
        bright = out['search'][..., 1] > 125
        mask = out['search_mask'] > 0
        iou = (bright & mask).sum() / (bright | mask).sum()
        assert iou > 0.95, (k, iou)
        # The L's foot is at the bottom; its long side is on the left unless flipped.
        ys, xs = np.nonzero(mask)
        column = xs[ys < ys.min() + 5]
        left_half = column.mean() < (xs.min() + xs.max()) / 2
        assert left_half == (flip == 0.0)


def test_pair_without_mask_or_negative_has_mask_zero():
    from tracking.data.pysot_pairs import PysotPairSampler
    seq = _bright_target_sequence()
    no_mask = Sequence('plain', seq.frames, seq.boxes)
    config = _data_config(0.0)
    sampler = PysotPairSampler([[no_mask]], (1.0,), (3,), config, 127, 255, seed=0, masks=True)
    out = sampler.sample(0)
    assert out['has_mask'] == 0 and not out['search_mask'].any()
    config.neg = 1.0
    sampler = PysotPairSampler([[seq]], (1.0,), (3,), config, 127, 255, seed=0, masks=True)
    out = sampler.sample(0)
    assert out['negative'] == 1 and out['has_mask'] == 0 and not out['search_mask'].any()


# -- synthetic 1.2.0 ----------------------------------------------------------------------------

def test_synthetic_masks_render_the_visible_target(tmp_path):
    from tracking.data import synthetic
    from tracking.data.synthetic import generate_sequence, load_synthetic, split_seeds
    data = generate_sequence(7, 30, (96, 96))
    masks, boxes = data['masks'], data['boxes']
    assert masks.shape == (30, 96, 96) and masks.dtype == np.uint8
    for t in range(30):
        ys, xs = np.nonzero(masks[t])
        if data['visible'][t] and data['occluded_fraction'][t] == 0:
            assert xs.size > 0.5 * boxes[t, 2] * boxes[t, 3]
        if xs.size:   # inside the box, up to the motion-blur spread (<= 5 px)
            assert xs.min() >= boxes[t, 0] - 5 and xs.max() < boxes[t, 0] + boxes[t, 2] + 5
            assert ys.min() >= boxes[t, 1] - 5 and ys.max() < boxes[t, 1] + boxes[t, 3] + 5
    assert str(synthetic.SyntheticTracking.VERSION) == '1.2.0'
    sequences = load_synthetic('test', data_dir=str(tmp_path), config='small')
    config = synthetic.SyntheticTracking.builder_configs['small']
    table = SequenceTable(sequences)
    seed = split_seeds('test', 1)[0]
    expected = generate_sequence(seed, synthetic.sequence_length(seed, *config.frame_range),
                                 config.frame_size)
    for i in range(len(sequences[0])):     # PNG: lossless
        np.testing.assert_array_equal(table.mask(0, i), expected['masks'][i])
