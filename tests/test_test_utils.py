"""engine.test_utils behaves as MXNet's mx.test_utils: tolerances per dtype, broadcasting,
star-exports, contexts, random inputs, environment patching, optimizer comparison and the
finite-difference check."""
import os

import numpy as np
import pytest

import engine as mx
from engine import nd, test_utils
from engine.base import MXNetError


def test_star_import_exports_what_mxnet_tests_use():
    ns = {}
    exec('from engine.test_utils import *', ns)
    for name in ('mx', 'np', 'same', 'assert_almost_equal', 'almost_equal', 'default_context',
                 'set_default_context', 'rand_ndarray', 'rand_shape_nd', 'compare_optimizer',
                 'check_numeric_gradient', 'assert_exception', 'environment', 'np_reduce',
                 'random_arrays', 'random_sample', 'use_np', 'assert_allclose'):
        assert name in ns, name
    assert ns['mx'] is mx and ns['np'] is np


def test_same_compares_shape_and_values_of_arrays_and_ndarrays():
    assert test_utils.same(nd.array([1, 2]), np.array([1, 2], dtype=np.float32))
    assert not test_utils.same(nd.array([1, 2]), np.array([1, 3]))
    assert not test_utils.same(nd.ones((2, 1)), np.ones(2))


def test_assert_almost_equal_uses_per_dtype_defaults():
    # float32 default: rtol 1e-4, atol 1e-3 -> a difference of 5e-4 on 1.0 passes
    test_utils.assert_almost_equal(nd.array([1.0]), np.array([1.0005], dtype=np.float32))
    # float64 default: rtol 1e-5, atol 1e-20 -> the same difference fails
    with pytest.raises(AssertionError, match='rtol=1e-05'):
        test_utils.assert_almost_equal(np.array([1.0]), np.array([1.0005]))
    # the looser dtype of the two decides (float16: rtol 1e-2)
    test_utils.assert_almost_equal(np.array([1.0], np.float16), np.array([1.005]))
    assert test_utils.get_tols(np.float32(1), np.float16(1), None, None) == (1e-2, 1e-1)


def test_assert_almost_equal_broadcasts_unless_told_not_to_and_names_the_violation():
    test_utils.assert_almost_equal(nd.ones((2, 3)), np.ones(3))
    with pytest.raises(AssertionError, match='shapes differ'):
        test_utils.assert_almost_equal(nd.ones((2, 3)), np.ones(3), use_broadcast=False)
    with pytest.raises(AssertionError) as e:
        test_utils.assert_almost_equal(np.zeros((2, 3)), np.array([[0, 0, 0], [0, 5, 0.]]),
                                       rtol=0, atol=1e-3, names=('got', 'want'))
    msg = str(e.value)
    assert '1 of 6' in msg and '(1, 1)' in msg and 'want=' in msg
    test_utils.assert_almost_equal(np.array([np.nan]), np.array([np.nan]), equal_nan=True)
    with pytest.raises(AssertionError):
        test_utils.assert_almost_equal(np.array([np.nan]), np.array([np.nan]))
    test_utils.assert_almost_equal(np.array([0.5]), np.array([0.6]), rtol={np.dtype(np.float64): 0.5})


def test_almost_equal_and_assert_exception():
    assert test_utils.almost_equal(np.array([1.0]), np.array([1.0 + 1e-9]))
    assert not test_utils.almost_equal(np.array([1.0]), np.array([1.1]))
    test_utils.assert_exception(lambda: 1 / 0, ZeroDivisionError)
    with pytest.raises(AssertionError, match='did not raise'):
        test_utils.assert_exception(lambda: 1, ZeroDivisionError)


def test_set_default_context_changes_the_current_context():
    old = mx.current_context()
    try:
        test_utils.set_default_context(mx.cpu(1))
        assert test_utils.default_context() == mx.cpu(1)
        assert nd.zeros((1,)).context == mx.cpu(1)
    finally:
        test_utils.set_default_context(old)
    assert test_utils.default_context() == old


def test_random_helpers_shapes_and_dtypes():
    np.random.seed(0)
    s = test_utils.rand_shape_nd(4, dim=3)
    assert len(s) == 4 and all(1 <= d <= 3 for d in s) and all(type(d) is int for d in s)
    assert 0 in {d for _ in range(50) for d in test_utils.rand_shape_nd(3, 1, allow_zero_size=True)}
    x = test_utils.rand_ndarray((2, 3), dtype='float64')
    assert x.shape == (2, 3) and x.dtype == np.float64 and x.context == test_utils.default_context()
    r = test_utils.rand_ndarray((50, 3), 'row_sparse', density=0.3)
    dense = r.tostype('default').asnumpy()
    kept = np.any(dense != 0, axis=1)
    assert r.stype == 'row_sparse' and 0 < kept.sum() < 50 and np.all(dense[~kept] == 0)
    c = test_utils.rand_ndarray((20, 30), 'csr', density=0.1)
    assert c.stype == 'csr' and 0 < np.count_nonzero(c.tostype('default').asnumpy()) < 600
    with pytest.raises(MXNetError, match="unknown storage type 'bogus'"):
        test_utils.rand_ndarray((2, 3), 'bogus')
    a, b = test_utils.random_arrays((2,), (3, 1))
    assert a.shape == (2,) and b.shape == (3, 1) and a.dtype == np.float32
    assert sorted(test_utils.random_sample([1, 2, 3, 4], 4)) == [1, 2, 3, 4]


def test_np_reduce_matches_numpy_over_several_axes():
    x = np.arange(24.).reshape(2, 3, 4)
    np.testing.assert_array_equal(test_utils.np_reduce(x, (0, 2), True, np.sum),
                                  x.sum(axis=(0, 2), keepdims=True))
    np.testing.assert_array_equal(test_utils.np_reduce(x, -1, False, np.max), x.max(-1))
    assert test_utils.np_reduce(x, None, False, np.sum) == x.sum()


def test_environment_sets_and_restores_variables():
    os.environ.pop('ENGINE_TEST_A', None)
    os.environ['ENGINE_TEST_B'] = 'keep'
    with test_utils.environment({'ENGINE_TEST_A': '1', 'ENGINE_TEST_B': None}):
        assert os.environ['ENGINE_TEST_A'] == '1' and 'ENGINE_TEST_B' not in os.environ
        with test_utils.environment('ENGINE_TEST_A', '2'):
            assert os.environ['ENGINE_TEST_A'] == '2'
        assert os.environ['ENGINE_TEST_A'] == '1'
    assert 'ENGINE_TEST_A' not in os.environ and os.environ.pop('ENGINE_TEST_B') == 'keep'


def test_compare_optimizer_passes_for_equal_and_fails_for_different_optimizers():
    sgd = lambda lr: mx.optimizer.create('sgd', learning_rate=lr, momentum=0.9)  # noqa: E731
    test_utils.compare_optimizer(sgd(0.1), sgd(0.1), (3, 4), np.float32)
    with pytest.raises(AssertionError):
        test_utils.compare_optimizer(sgd(0.1), sgd(0.5), (3, 4), np.float32)


def test_check_numeric_gradient_accepts_ndarrays_and_mxnet_keywords():
    x = np.random.default_rng(0).standard_normal((2, 3))
    test_utils.check_numeric_gradient(lambda a: a * a, [nd.array(x)], numeric_eps=1e-5,
                                      grad_nodes=[0])
    with pytest.raises(MXNetError, match='function of NDArrays'):
        test_utils.check_numeric_gradient('not a function', [x])


def test_use_np_is_a_clear_error_when_called():
    @test_utils.use_np
    def needs_numpy_semantics():
        return 1
    with pytest.raises(MXNetError, match='use_np'):
        needs_numpy_semantics()
    assert mx.util.is_np_array() is False


def test_discard_stderr_silences_file_descriptor_2(capfd):
    with test_utils.discard_stderr():
        os.write(2, b'hidden\n')
    os.write(2, b'shown\n')
    assert capfd.readouterr().err == 'shown\n'


def test_mxnet_unittest_harness_aliases_mxnet_to_the_engine():
    # tools/mxnet_unittests/conftest.py, loaded in a fresh interpreter as pytest would load it
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = '''if True:
        import runpy, sys
        runpy.run_path("tools/mxnet_unittests/conftest.py")
        import mxnet as mx
        import mxnet.ndarray as nd
        from mxnet.test_utils import *
        import engine
        assert mx is sys.modules["mxnet"] and nd.ones is engine.nd.ones
        assert isinstance(nd.ones((2,)), engine.NDArray) and mx.nd.NDArray is engine.NDArray
        assert_almost_equal(nd.ones((2,)), np.ones(2))
        from nose.tools import assert_raises
        assert_raises(NotImplementedError, mx.nd.no_such_function_here)
        print("ok")
    '''
    res = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, ENGINE_NUM_THREADS='1'))
    assert res.returncode == 0 and res.stdout.strip() == 'ok', res.stdout + res.stderr


def test_check_numeric_gradient_symbol_form():
    check_numeric_gradient = test_utils.check_numeric_gradient
    rng = np.random.RandomState(0)
    x = mx.sym.var('x')
    out = mx.sym.tanh(mx.sym.FullyConnected(x, num_hidden=3, name='fc'))
    loc = {'x': rng.randn(2, 4), 'fc_weight': rng.randn(3, 4), 'fc_bias': rng.randn(3)}
    check_numeric_gradient(out, loc)
    check_numeric_gradient(out, [loc['x'], loc['fc_weight'], loc['fc_bias']], grad_nodes=['fc_weight'])
    bn = mx.sym.BatchNorm(x, name='bn', fix_gamma=False)     # training mode: batch statistics
    check_numeric_gradient(bn, {'x': rng.randn(4, 3), 'bn_gamma': rng.rand(3) + 0.5, 'bn_beta': rng.randn(3)},
                           aux_states={'bn_moving_mean': np.zeros(3), 'bn_moving_var': np.ones(3)},
                           rtol=1e-4, atol=1e-6)
    with pytest.raises(AssertionError):           # a gradient blocked on one path is caught
        check_numeric_gradient(mx.sym.BlockGrad(x) * x, {'x': rng.randn(3)})
    with pytest.raises(mx.MXNetError, match='no value'):
        check_numeric_gradient(out, {'x': loc['x']})
    with pytest.raises(mx.MXNetError, match='not arguments'):
        check_numeric_gradient(out, loc, grad_nodes=['y'])
