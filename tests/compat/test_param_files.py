"""Gluon parameter files: MXNet 1.9.1's .params (save_parameters, export's arg:/aux: names, shared
parameters with and without deduplicate) load into the same networks built here and give MXNet's
outputs; save_parameters writes MXNet's bytes; dtype casting and bad files as MXNet 1.9 does."""
import os

import numpy as np
import pytest

import engine as mx
from engine import autograd, nd
from engine.base import MXNetError
from engine.gluon import nn

FIX = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'mxnet')


def fixture(name):
    return os.path.join(FIX, name)


def io(name):
    with np.load(fixture(name), allow_pickle=False) as z:
        return z['x'], z['y']


def lenet():
    """The network of generate_arrays.lenet(), layer for layer."""
    net = nn.HybridSequential(prefix='lenet_')
    with net.name_scope():
        net.add(nn.Conv2D(6, 5, activation='relu'), nn.MaxPool2D(2, 2),
                nn.Conv2D(16, 5), nn.BatchNorm(), nn.Activation('relu'), nn.MaxPool2D(2, 2),
                nn.Dense(120, activation='relu'), nn.Dense(84, activation='relu'), nn.Dense(10))
    return net


def values(net):
    return {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_mxnet_lenet_params_give_mxnets_output(hybridize):
    x, y = io('lenet_io.npz')
    net = lenet()
    net.load_parameters(fixture('lenet_gluon.params'))      # shapes come from the file
    if hybridize:
        net.hybridize()
    with autograd.predict_mode():
        np.testing.assert_allclose(net(nd.array(x)).asnumpy(), y, rtol=1e-4, atol=1e-5)


def test_save_parameters_writes_mxnets_bytes(tmp_path):
    net = lenet()
    net.load_parameters(fixture('lenet_gluon.params'))
    out = tmp_path / 'lenet.params'
    net.save_parameters(str(out))
    assert out.read_bytes() == open(fixture('lenet_gluon.params'), 'rb').read()


def argaux_net():
    net = nn.HybridSequential(prefix='argaux_')
    with net.name_scope():
        net.add(nn.Dense(3, in_units=4), nn.BatchNorm(in_channels=3))
    return net


def test_export_file_with_arg_and_aux_names_loads_into_a_parameter_dict():
    x, y = io('arrays_argaux_io.npz')
    net = argaux_net()
    net.collect_params().load(fixture('arrays_argaux-0000.params'))
    with autograd.predict_mode():
        np.testing.assert_allclose(net(nd.array(x)).asnumpy(), y, rtol=1e-5, atol=1e-6)


def test_full_names_without_dots_load_through_the_block_prefix(tmp_path):
    """MXNet's legacy path: a file of ParameterDict.save(strip_prefix=block.prefix)."""
    src = argaux_net()
    src.collect_params().load(fixture('arrays_argaux-0000.params'))
    f = str(tmp_path / 'legacy.params')
    src.collect_params().save(f, strip_prefix='argaux_')
    assert sorted(nd.load(f))[0] == 'batchnorm0_beta'
    dst = argaux_net()
    dst.load_parameters(f)
    for k, v in values(src).items():
        np.testing.assert_array_equal(values(dst)[k], v)


class Shared(nn.HybridBlock):
    """generate_arrays.Shared: two Dense layers holding one set of parameters."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.first = nn.Dense(4, in_units=4, activation='tanh')
            self.second = nn.Dense(4, in_units=4, params=self.first.collect_params())

    def hybrid_forward(self, F, x):
        return self.second(self.first(x))


@pytest.mark.parametrize('name', ['arrays_shared_full.params', 'arrays_shared_dedup.params'])
def test_shared_parameters_load_from_full_and_deduplicated_files(name):
    x, y = io('arrays_shared_io.npz')
    net = Shared(prefix='shared_')
    net.initialize()
    net.load_parameters(fixture(name))
    np.testing.assert_allclose(net(nd.array(x)).asnumpy(), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dedup, name', [(False, 'arrays_shared_full.params'),
                                         (True, 'arrays_shared_dedup.params')])
def test_shared_parameters_save_as_mxnet_does(tmp_path, dedup, name):
    net = Shared(prefix='shared_')
    net.initialize()
    net.load_parameters(fixture(name))
    out = tmp_path / 'shared.params'
    net.save_parameters(str(out), deduplicate=dedup)
    assert out.read_bytes() == open(fixture(name), 'rb').read()


def test_a_missing_shared_name_is_still_missing_when_no_alias_is_in_the_file(tmp_path):
    net = Shared(prefix='shared_')
    net.initialize()
    f = str(tmp_path / 'part.params')
    nd.save(f, {'first.weight': nd.ones((4, 4)), 'second.weight': nd.ones((4, 4))})
    with pytest.raises(MXNetError, match=r"missing from the file: \['first.bias', 'second.bias'\]"):
        net.load_parameters(f)


# ---- dtypes ----------------------------------------------------------------------------------
def _f64_net():
    net = argaux_net()
    net.initialize()
    net.cast('float64')
    return net


def test_dtype_mismatch_is_an_error_without_cast_dtype():
    net = _f64_net()
    before = values(net)
    with pytest.raises(MXNetError, match=r'argaux_dense0_weight is float32 in the file but float64 '
                                         r'in the block \(pass cast_dtype=True'):
        net.collect_params().load(fixture('arrays_argaux-0000.params'))
    for k, v in values(net).items():
        np.testing.assert_array_equal(v, before[k])


def test_cast_dtype_current_keeps_the_block_dtype():
    net = _f64_net()
    net.collect_params().load(fixture('arrays_argaux-0000.params'), cast_dtype=True)
    saved = nd.load(fixture('arrays_argaux-0000.params'))
    for k, p in net.collect_params().items():
        assert p.dtype == np.float64 and p.data().dtype == np.float64
        key = ('aux:' if 'running' in k else 'arg:') + k
        np.testing.assert_array_equal(p.data().asnumpy(), saved[key].asnumpy().astype(np.float64))


def test_cast_dtype_saved_takes_the_file_dtype(tmp_path):
    net = lenet()
    net.initialize()
    net(nd.zeros((1, 1, 28, 28)))
    net.cast('float64')
    net.load_parameters(fixture('lenet_gluon.params'), cast_dtype=True, dtype_source='saved')
    assert {np.dtype(p.data().dtype) for p in net.collect_params().values()} == {np.dtype(np.float32)}
    x, y = io('lenet_io.npz')
    with autograd.predict_mode():
        np.testing.assert_allclose(net(nd.array(x)).asnumpy(), y, rtol=1e-4, atol=1e-5)


def test_dtype_source_must_be_current_or_saved():
    with pytest.raises(MXNetError, match=r"dtype_source must be 'current' or 'saved', got 'file'"):
        lenet().load_parameters(fixture('lenet_gluon.params'), cast_dtype=True, dtype_source='file')


# ---- prefixes and bad files ----------------------------------------------------------------------
def test_prefixes_that_do_not_fit_are_errors(tmp_path):
    net = argaux_net()
    net.initialize()
    with pytest.raises(MXNetError, match=r"strip_prefix is 'other_' but parameter argaux_dense0_"):
        net.collect_params().save(str(tmp_path / 'x.params'), strip_prefix='other_')
    with pytest.raises(MXNetError, match=r"restore_prefix is 'other_' but parameter argaux_dense0_"):
        net.collect_params().load(fixture('arrays_argaux-0000.params'), restore_prefix='other_')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('name, msg', [('arrays_list.nd', r'unnamed list of 3 arrays'),
                                       ('arrays_row_sparse.nd', r'row_sparse storage')])
def test_files_that_are_not_parameters_leave_the_block_unchanged(name, msg):
    net = lenet()
    net.load_parameters(fixture('lenet_gluon.params'))
    before = values(net)
    with pytest.raises(MXNetError, match=msg):
        net.load_parameters(fixture(name))
    for k, v in values(net).items():
        np.testing.assert_array_equal(v, before[k])


def test_a_file_cut_inside_the_last_array_names_the_offset_and_changes_nothing(tmp_path):
    data = open(fixture('lenet_gluon.params'), 'rb').read()
    names = list(nd.load(fixture('lenet_gluon.params')))
    names_size = 8 + sum(8 + len(n.encode()) for n in names)     # the names follow the arrays
    f = tmp_path / 'cut.params'
    f.write_bytes(data[:len(data) - names_size - 20])          # half of the last bias (10 floats)
    net = lenet()
    net.load_parameters(fixture('lenet_gluon.params'))
    before = values(net)
    with pytest.raises(MXNetError, match=r'cut\.params.*byte offset \d+: expected array 13: data '
                                         r'of shape \(10,\) float32'):
        net.load_parameters(str(f))
    for k, v in values(net).items():
        np.testing.assert_array_equal(v, before[k])


def test_a_block_without_parameters_round_trips_an_empty_file(tmp_path):
    f = str(tmp_path / 'none.params')
    nn.HybridSequential().save_parameters(f)
    nn.HybridSequential().load_parameters(f)
    with pytest.raises(MXNetError, match=r"missing from the file: \['0.weight'"):
        argaux_net().load_parameters(f)


def test_copies_on_several_devices_save_their_mean(tmp_path):
    """MXNet's Parameter._reduce: the saved value is the average of the device copies."""
    net = nn.Dense(2, in_units=2, prefix='d_')
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    a, b = net.weight.list_data()
    a[:] = nd.array([[1, 2], [3, 4]])
    b[:] = nd.array([[3, 2], [1, 0]])
    f = str(tmp_path / 'mean.params')
    net.save_parameters(f)
    np.testing.assert_array_equal(nd.load(f)['weight'].asnumpy(), [[2, 2], [2, 2]])


def test_load_dict_takes_ndarrays_with_arg_prefixes():
    net = argaux_net()
    net.initialize()
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    net.collect_params().load_dict({'arg:argaux_dense0_weight': nd.array(w)}, allow_missing=True)
    np.testing.assert_array_equal(net[0].weight.data().asnumpy(), w)
