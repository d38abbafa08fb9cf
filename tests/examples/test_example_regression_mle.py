"""examples/regression_mle.py: maximum likelihood with engine.distributions.Normal."""
import numpy as np
import pytest


def _bar(res):
    assert abs(res['slope'] - 2.0) <= 0.2
    assert abs(res['intercept'] - 3.0) <= 0.5
    assert res['sd_increasing'] and res['sd_at_5'] > res['sd_at_0']


def test_data_is_fixed_and_heteroscedastic():
    from regression_mle import make_data
    x, y = make_data(500, seed=0)
    x2, y2 = make_data(500, seed=0)
    np.testing.assert_array_equal(y, y2)
    resid = y - (2 * x[:, 0] + 3)
    assert resid[:100].std() < resid[-100:].std() / 3


def test_fast_fit_eager_matches_hybridized(tmp_path):
    import regression_mle
    hyb = regression_mle.run(epochs=2000, progress=False, verbose=False)
    eager = regression_mle.run(epochs=60, eager=True, progress=False, verbose=False)
    loss = hyb['history'].step_loss
    assert loss[-1] < 0.1 * loss[0]
    np.testing.assert_allclose(eager['history'].step_loss, loss[:60], rtol=1e-4)
    _bar(hyb)
    try:
        import matplotlib  # noqa: F401  (optional: the `examples` extra)
    except ImportError:
        return
    regression_mle.plot(hyb, tmp_path / 'mle.png')
    assert (tmp_path / 'mle.png').exists()


@pytest.mark.slow
def test_full_run_reaches_bar(tmp_path):
    pytest.importorskip('matplotlib')
    import regression_mle
    for argv in ([], ['--eager']):
        _bar(regression_mle.main(argv + ['--plot', str(tmp_path / 'mle.png')]))
