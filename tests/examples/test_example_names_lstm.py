"""examples/names_lstm.py: the bidirectional character LSTM on Spanish names."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
NAMES = DATA / 'spanish_names'
needs_data = pytest.mark.skipif(not (NAMES / 'female_names.csv').exists() or
                                not (NAMES / 'male_names.csv').exists(),
                                reason=f'Spanish names CSVs not in {NAMES}')


def test_lstm_learns_a_synthetic_order_dependent_rule():
    import common
    import names_lstm
    from engine import gluon, nd
    net = names_lstm.NameLSTM(vocab_size=4, embedding=8, hidden=8)
    net.initialize()
    net.hybridize()
    # label = does token 1 come before token 2 (an order a bag of characters cannot tell)
    rng = np.random.default_rng(0)
    x = np.zeros((256, 6), np.int32)
    y = rng.integers(0, 2, 256).astype(np.int32)
    for i in range(256):
        a, b = sorted(rng.choice(6, 2, replace=False))
        x[i, a], x[i, b] = (1, 2) if y[i] else (2, 1)
    assert net(nd.array(x[:4], dtype='int32')).shape == (4, 2)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-2})
    hist = common.fit(net, trainer, common.loader(x, y, 32), 8, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      progress=False, verbose=False)
    assert np.mean(hist.step_loss[-5:]) < 0.5 * np.mean(hist.step_loss[:5])
    assert common.accuracy(net, x, y) > 0.9


def test_missing_data_exits_with_message(tmp_path):
    import names_lstm
    with pytest.raises(SystemExit) as e:
        names_lstm.main(['--data-root', str(tmp_path)])
    assert 'male_names.csv' in str(e.value)


@pytest.mark.slow
@needs_data
def test_fast_slice_eager_equals_hybridized():
    import names_lstm
    runs = [names_lstm.run(NAMES, epochs=1, limit=2000, eager=e, progress=False, verbose=False) for e in (True, False)]
    for res in runs:
        assert res['val_acc'] > 0.7
    np.testing.assert_allclose(runs[0]['history'].step_loss, runs[1]['history'].step_loss, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
@needs_data
def test_full_run_matches_the_text_cnn():
    import names_lstm
    assert names_lstm.main([])['val_acc'] >= 0.92
