"""The torch-free checkpoint reader against a file written by torch.save (tests/data/)."""
from pathlib import Path

import numpy as np
import pytest

from tracking.torch_pickle import load_torch_file, state_dict_from_file

FIXTURE = Path(__file__).parent / 'data' / 'torch_fixture.pth.tar'
# The fixture was written by torch 2.13 with a trainer-style dict: {'epoch', 'net_type', 'net',
# 'settings' (an instance of a class from the training code), 'stats'}.


def test_reads_trainer_dict_and_tensors():
    ckpt = load_torch_file(FIXTURE)
    assert ckpt['epoch'] == 300 and ckpt['net_type'] == 'GRM'
    net = ckpt['net']
    np.testing.assert_array_equal(net['a.weight'], np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    np.testing.assert_array_equal(net['a.bias'], np.array([1.5, -2.0], np.float32))
    assert net['a.weight'].dtype == np.float32


def test_views_strides_and_dtypes():
    net = load_torch_file(FIXTURE)['net']
    # A transposed (non-contiguous) tensor keeps its logical values.
    np.testing.assert_array_equal(net['t.weight'], np.arange(12, dtype=np.float32).reshape(3, 4).T)
    # Two views of one shared float64 storage, with offsets.
    np.testing.assert_array_equal(net['sh.x'], np.array([2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(net['sh.y'], np.arange(5, 10, dtype=np.float64))
    assert net['h.weight'].dtype == np.float16 and net['h.weight'][0, 0] == 0.5
    assert net['i.idx'].dtype == np.int32 and list(net['i.idx']) == [3, 4]
    assert net['bn.num_batches_tracked'] == 7 and net['bn.num_batches_tracked'].dtype == np.int64
    assert float(net['s.scalar']) == 2.5
    np.testing.assert_array_equal(net['p.param'], np.full(3, 0.25, np.float32))


def test_state_dict_picks_net_entry():
    weights = state_dict_from_file(FIXTURE)
    assert 'a.weight' in weights and 'epoch' not in weights


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_torch_file(tmp_path / 'missing.pth')
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='bad.pth'):
        load_torch_file(bad)
    with pytest.raises(KeyError, match='model'):
        state_dict_from_file(FIXTURE, key='model')
