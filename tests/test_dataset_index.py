"""The memory-mapped training-set index (tracking/data/index.py) against the eager readers."""
import json
import os
import warnings
from pathlib import Path

import cv2
import ml_collections
import numpy as np
import pytest

from tracking.config import load_config
from tracking.data import index as index_lib
from tracking.data.datasets import (load_training_index, load_training_sequences,
                                    load_training_set)
from tracking.data.pairs import PairSampler
from tracking.data.pysot_pairs import PysotPairSampler

CONFIG_PATH = str(Path(__file__).resolve().parents[1] / 'configs' / 'grm.py')
SETS = ('got10k_train', 'got10k_vot_train', 'lasot', 'trackingnet', 'coco')
IMAGE_W, IMAGE_H = 64, 48


def _lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))


def _image(path, seed):
    """A 64x48 JPEG with a pattern of its own (so different frames give different crops)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    assert cv2.imwrite(str(path), image)


def _boxes(count, k):
    """Boxes inside the 64x48 frame; frame 3 NaN, frame 4 zero width (unusable, not errors)."""
    rows = [f'{4 + (t + k) % 20},{6 + t % 10},{14 + k},{12 + t % 5}' for t in range(count)]
    if count > 4:
        rows[3], rows[4] = 'NaN,NaN,NaN,NaN', '5,5,0,9'
    return rows


def make_tree(base: Path, images: bool = True) -> dict:
    """Small GOT-10k / LaSOT / TrackingNet / COCO trees; returns {set name: root}."""
    seed = iter(range(10_000))
    got = base / 'got10k'
    names = [f'GOT-10k_Train_{k:06d}' for k in range(1, 4)]
    for k, (name, count) in enumerate(zip(names, (22, 25, 3))):
        seq = got / 'train' / name
        _lines(seq / 'groundtruth.txt', _boxes(count, k))
        _lines(seq / 'absence.label', [int(t == 7) for t in range(count)])
        _lines(seq / 'cover.label', [0 if t == 9 else 8 for t in range(count)])
        _lines(seq / 'meta_info.ini', ['[METAINFO]', f'resolution: ({IMAGE_W}, {IMAGE_H})'])
        for t in range(count) if images else ():
            _image(seq / f'{t + 1:08d}.jpg', next(seed))
    _lines(got / 'train' / 'list.txt', names)
    _lines(got / 'got10k_vot_train_split.txt', ['2', names[0]])   # index and name
    lasot = base / 'lasot'
    for k, (name, count) in enumerate((('airplane-1', 3), ('bird-1', 21), ('cat-4', 24))):
        seq = lasot / name.split('-')[0] / name
        _lines(seq / 'groundtruth.txt', _boxes(count, k))
        (seq / 'full_occlusion.txt').write_text(','.join(str(int(t == 6)) for t in range(count)))
        (seq / 'out_of_view.txt').write_text(','.join(str(int(t == 8)) for t in range(count)))
        for t in range(count) if images else ():
            _image(seq / 'img' / f'{t + 1:08d}.jpg', next(seed))
    trackingnet = base / 'trackingnet'
    for k, (chunk, name, count) in enumerate((('TRAIN_0', 'a_0', 20), ('TRAIN_2', 'b_1', 23),
                                              ('TRAIN_2', 'c_2', 2))):
        _lines(trackingnet / chunk / 'anno' / f'{name}.txt', _boxes(count, k))
        for t in range(count) if images else ():
            _image(trackingnet / chunk / 'frames' / name / f'{t}.jpg', next(seed))
    coco = base / 'coco'
    files = [f'{k:012d}.jpg' for k in (1, 2, 3)]
    for name in files if images else ():
        _image(coco / 'train2017' / name, next(seed))
    data = dict(
        images=[dict(id=i + 1, file_name=f, width=IMAGE_W, height=IMAGE_H)
                for i, f in enumerate(files)],
        annotations=[dict(id=11, image_id=1, bbox=[3, 4, 20, 15], iscrowd=0, category_id=1),
                     dict(id=12, image_id=1, bbox=[0, 0, 30, 20], iscrowd=1, category_id=2),
                     dict(id=13, image_id=2, bbox=[5, 5, 0, 7], iscrowd=0, category_id=3),
                     dict(id=14, image_id=3, bbox=[10, 8, 25, 18], iscrowd=0),
                     dict(id=15, image_id=2, bbox=[30, 20, 12, 10], iscrowd=0, category_id=1)])
    _lines(coco / 'annotations' / 'instances_train2017.json', [json.dumps(data)])
    return {'got10k_train': got, 'got10k_vot_train': got, 'lasot': lasot,
            'trackingnet': trackingnet, 'coco': coco}


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp('sets'))


@pytest.fixture(autouse=True)
def no_user_cache(tmp_path, monkeypatch):
    """Never write to the real ~/.cache or a $TRACKING_INDEX_CACHE set outside the tests."""
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'user_cache'))
    monkeypatch.delenv(index_lib.CACHE_ENV, raising=False)


def _assert_same_sequences(index, eager):
    assert len(index) == len(eager)
    np.testing.assert_array_equal(index.lengths(), [len(s) for s in eager])
    for s, seq in enumerate(eager):
        got = index.sequence(s)
        assert got.name == seq.name
        assert got.frames == [str(f) for f in seq.frames]
        np.testing.assert_array_equal(got.boxes, seq.boxes)      # NaN rows included
        np.testing.assert_array_equal(got.visible, seq.visible)


@pytest.mark.parametrize('name', SETS)
def test_index_equals_eager_reader(tree, tmp_path, name):
    eager = load_training_set(name, tree[name])
    index = load_training_index(name, tree[name], cache=tmp_path / 'cache')
    _assert_same_sequences(index, eager)
    assert isinstance(index.mapped['boxes'], np.memmap)   # read from the mapped file
    assert np.shares_memory(index.boxes(0), index.mapped['boxes'])
    assert index.boxes(0).dtype == np.float32          # integer boxes: stored compactly
    np.testing.assert_array_equal(index.frame(len(index) - 1, 0), eager[-1].frame(0))


def test_expected_content(tree, tmp_path):
    """The fake trees exercise absent, NaN and zero-size frames and the set-specific lists."""
    lasot = load_training_index('lasot', tree['lasot'], cache=tmp_path)
    assert [lasot.name(s) for s in range(len(lasot))] == ['bird-1', 'cat-4']  # airplane-1: test
    assert not lasot.visible(0)[[3, 4, 6, 8]].any() and lasot.visible(0)[[0, 5, 7]].all()
    vot = load_training_index('got10k_vot_train', tree['got10k_vot_train'], cache=tmp_path)
    assert [vot.name(s) for s in range(len(vot))] == ['GOT-10k_Train_000003',
                                                      'GOT-10k_Train_000001']
    coco = load_training_index('coco', tree['coco'], cache=tmp_path)
    assert [coco.name(s) for s in range(len(coco))] == ['coco_11', 'coco_13', 'coco_14',
                                                        'coco_15']
    assert coco.frame_path(3, 0) == os.path.join(tree['coco'], 'train2017', '000000000002.jpg')
    np.testing.assert_array_equal(coco.usable_counts(), [1, 0, 1, 1])
    with pytest.raises(IndexError, match='coco_11: frame 1 out of range'):
        coco.frame_path(0, 1)


def test_building_reads_no_image(tmp_path):
    """No image file exists: the index is built from annotations alone; a frame read then
    fails naming the set, sequence, frame and file."""
    roots = make_tree(tmp_path / 'sets', images=False)
    for name in SETS:
        index = load_training_index(name, roots[name], cache=tmp_path / 'cache')
        assert len(index) and index.num_frames
    with pytest.raises(index_lib.FrameError, match=r'lasot sequence bird-1, frame 2: .*00000003'):
        index = load_training_index('lasot', roots['lasot'], cache=tmp_path / 'cache')
        index.frame(0, 2)


def test_warm_index_is_mapped_not_rebuilt(tree, tmp_path, monkeypatch):
    first = load_training_index('trackingnet', tree['trackingnet'], cache=tmp_path)

    def no_build(*_):
        raise AssertionError('warm index rebuilt')

    monkeypatch.setattr(index_lib, '_final_arrays', no_build)
    warm = load_training_index('trackingnet', tree['trackingnet'], cache=tmp_path)
    assert warm.folder == first.folder
    assert all(isinstance(a, np.memmap) for a in warm.mapped.values() if a.size)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [first.folder.name]


def test_rebuilt_when_an_annotation_file_changes(tmp_path):
    roots = make_tree(tmp_path / 'sets', images=False)
    cache = tmp_path / 'cache'
    old = load_training_index('lasot', roots['lasot'], cache=cache)
    np.testing.assert_array_equal(old.boxes(1)[0], [6, 6, 16, 12])
    gt = roots['lasot'] / 'cat' / 'cat-4' / 'groundtruth.txt'
    lines = gt.read_text().splitlines()
    gt.write_text('\n'.join(['7.1,8,9,10'] + lines[1:]) + '\n')   # 7.1: not a float32
    stat = os.stat(gt)
    os.utime(gt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    new = load_training_index('lasot', roots['lasot'], cache=cache)
    assert new.folder != old.folder and not old.folder.exists()   # stale folder removed
    np.testing.assert_array_equal(new.boxes(1)[0], [7.1, 8, 9, 10])
    assert new.boxes(1).dtype == np.float64           # kept exact, not rounded to float32
    _assert_same_sequences(new, load_training_set('lasot', roots['lasot']))


def test_rebuilt_when_the_format_version_changes(tree, tmp_path, monkeypatch):
    old = load_training_index('coco', tree['coco'], cache=tmp_path)
    monkeypatch.setattr(index_lib, 'INDEX_VERSION', index_lib.INDEX_VERSION + 1)
    new = load_training_index('coco', tree['coco'], cache=tmp_path)
    assert new.folder != old.folder and new.meta['version'] == index_lib.INDEX_VERSION


def test_default_cache_beside_the_data(tmp_path):
    roots = make_tree(tmp_path / 'sets', images=False)
    index = load_training_index('trackingnet', roots['trackingnet'])
    assert index.folder.parent == roots['trackingnet'] / index_lib.ROOT_CACHE_NAME
    assert not (tmp_path / 'user_cache').exists()
    # the hidden folder does not change what the eager reader or the index see
    _assert_same_sequences(load_training_index('trackingnet', roots['trackingnet']),
                           load_training_set('trackingnet', roots['trackingnet']))


def test_got10k_split_folder_as_root_without_list(tmp_path):
    """Root = the train folder itself and no list.txt: sequences are the sub-folders, and the
    index's own <root>/.tracking_index must not become one."""
    roots = make_tree(tmp_path / 'sets', images=False)
    train = roots['got10k_train'] / 'train'
    (train / 'list.txt').unlink()
    first = load_training_index('got10k_train', train)
    assert first.folder.parent == train / index_lib.ROOT_CACHE_NAME
    again = load_training_index('got10k_train', train)
    assert again.folder == first.folder
    _assert_same_sequences(again, load_training_set('got10k_train', train))


def test_env_var_names_the_cache(tmp_path, monkeypatch):
    roots = make_tree(tmp_path / 'sets', images=False)
    monkeypatch.setenv(index_lib.CACHE_ENV, str(tmp_path / 'env_cache'))
    index = load_training_index('coco', roots['coco'])
    assert index.folder.parent == tmp_path / 'env_cache'


def test_read_only_root_caches_in_the_user_folder(tmp_path):
    """chmod 555 on the root; as root user (where chmod stops nothing) the root's cache folder
    name is also taken by a plain file, so it cannot be created there either."""
    roots = make_tree(tmp_path / 'sets', images=False)
    root = roots['lasot']
    if os.geteuid() == 0:
        (root / index_lib.ROOT_CACHE_NAME).write_text('not a folder')
    before = sorted(str(p) for p in root.rglob('*'))
    os.chmod(root, 0o555)
    try:
        index = load_training_index('lasot', root)
        assert index.folder.parent == tmp_path / 'user_cache' / 'jax_tracking' / 'index'
        assert sorted(str(p) for p in root.rglob('*')) == before    # nothing written there
        _assert_same_sequences(index, load_training_set('lasot', root))
    finally:
        os.chmod(root, 0o755)


@pytest.mark.parametrize('damage', ['truncate boxes.npy', 'garble meta.json',
                                    'delete visible.npy'])
def test_corrupt_index_is_rebuilt_with_a_warning(tree, tmp_path, damage):
    index = load_training_index('got10k_train', tree['got10k_train'], cache=tmp_path)
    folder = index.folder
    del index
    action, file = damage.split()
    path = folder / file
    if action == 'truncate':
        path.write_bytes(path.read_bytes()[:200])
    elif action == 'garble':
        path.write_text('{"version": ')
    else:
        path.unlink()
    with pytest.warns(RuntimeWarning, match=f'dataset index .*{file}.*rebuilding'):
        rebuilt = load_training_index('got10k_train', tree['got10k_train'], cache=tmp_path)
    _assert_same_sequences(rebuilt, load_training_set('got10k_train', tree['got10k_train']))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_training_index('got10k_train', tree['got10k_train'], cache=tmp_path)


def test_training_path_uses_the_index(tree, tmp_path):
    config = load_config(CONFIG_PATH + ':tiny', [f'data.index_cache={tmp_path}'])
    for key in ('got10k', 'lasot', 'trackingnet', 'coco'):
        config.data.roots[key] = str(tree['lasot' if key == 'lasot' else
                                          'got10k_train' if key == 'got10k' else key])
    for name in ('got10k_train', 'lasot', 'trackingnet', 'coco'):
        data = load_training_sequences(name, config.data)
        assert isinstance(data, index_lib.DatasetIndex) and data.folder.parent == tmp_path


def _sources(tree, tmp_path, names):
    eager = [load_training_set(n, tree[n]) for n in names]
    indexed = [load_training_index(n, tree[n], cache=tmp_path) for n in names]
    return eager, indexed


def _assert_same_samples(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_grm_samples_identical_to_eager_path(tree, tmp_path):
    config = load_config(CONFIG_PATH + ':tiny', ['model.patch_size=8'])
    names = ('got10k_train', 'lasot', 'trackingnet', 'coco')
    eager, indexed = _sources(tree, tmp_path, names)
    ratios = (1.0, 1.0, 1.0, 1.0)
    before = PairSampler(eager, ratios, config.data, config.model, seed=5)
    after = PairSampler(indexed, ratios, config.data, config.model, seed=5)
    assert [len(k) for _, k in after.datasets] == [2, 2, 2, 3]   # short/unusable ones dropped
    for k in range(16):
        _assert_same_samples(before.sample(k), after.sample(k))


def test_pysot_samples_identical_to_eager_path(tree, tmp_path):
    params = dict(shift=0.0, scale=0.0, blur=0.0, flip=0.0, color=1.0)
    data = ml_collections.ConfigDict(dict(
        neg=0.3, gray=0.2, template=dict(params, shift=4.0, scale=0.05),
        search=dict(params, shift=16.0, scale=0.18, blur=0.2)))
    names = ('got10k_vot_train', 'lasot', 'trackingnet', 'coco')
    eager, indexed = _sources(tree, tmp_path, names)
    args = ((1.0, 2.0, 1.0, 1.0), (20, 20, 20, 1), data, 127, 255)
    before = PysotPairSampler(eager, *args, seed=9)
    after = PysotPairSampler(indexed, *args, seed=9)
    negatives = 0
    for k in range(16):
        a, b = before.sample(k), after.sample(k)
        _assert_same_samples(a, b)
        negatives += int(a['negative'])
    assert 0 < negatives < 16
