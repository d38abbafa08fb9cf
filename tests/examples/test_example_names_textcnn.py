"""examples/names_textcnn.py: the character CNN on Spanish names."""
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
NAMES = DATA / 'spanish_names'
needs_data = pytest.mark.skipif(not (NAMES / 'female_names.csv').exists() or
                                not (NAMES / 'male_names.csv').exists(),
                                reason=f'Spanish names CSVs not in {NAMES}')


def test_encoding_follows_the_seed():
    from names_textcnn import MAX_LEN, Vocabulary
    vocab = Vocabulary(['maria_jose', 'ñoño', "d'artagnan"])
    assert vocab.chars[0] == '.' and vocab.chars[1:] == sorted(vocab.chars[1:])
    ids = vocab.encode('maria_jose')
    assert len(ids) == MAX_LEN + 1
    assert vocab.decode(ids) == '.maria_jose' + '.' * (MAX_LEN - 10)
    assert vocab.decode(vocab.encode('zzñ')) == '.ñ' + '.' * (MAX_LEN - 1)     # unknown chars dropped
    assert vocab.decode(vocab.encode('ñ' * 30)) == '.' + 'ñ' * MAX_LEN                  # truncated to 22


def test_textcnn_shapes_and_synthetic_learning():
    import common
    import names_textcnn
    from engine import gluon, nd
    net = names_textcnn.TextCNN(vocab_size=8)
    net.init_like_pytorch()
    net.hybridize()
    # label = does token 3 occur anywhere: exactly what max-pool over time can detect
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (512, 23)).astype(np.int32)
    y = rng.integers(0, 2, 512).astype(np.int32)
    pos = rng.integers(0, 23, 512)
    x[y == 1, pos[y == 1]] = 3
    assert net(nd.array(x[:4], dtype='int32')).shape == (4, 2)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 3e-3})
    hist = common.fit(net, trainer, common.loader(x, y, 32), 3, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      progress=False, verbose=False)
    assert np.mean(hist.step_loss[-5:]) < 0.5 * np.mean(hist.step_loss[:5])
    assert common.accuracy(net, x, y) > 0.9


@needs_data
def test_fast_slice():
    import names_textcnn
    res = names_textcnn.run(NAMES, epochs=1, limit=3000, progress=False, verbose=False)
    loss = res['history'].step_loss
    assert np.mean(loss[-10:]) < 0.85 * np.mean(loss[:10])
    assert res['val_acc'] > 0.65
    assert len(res['vocab']) > 27
    p = names_textcnn.p_female(res['net'], res['vocab'], ['maria', 'juan'])
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))


def test_missing_data_exits_with_message(tmp_path):
    import names_textcnn
    with pytest.raises(SystemExit) as e:
        names_textcnn.main(['--data-root', str(tmp_path)])
    assert 'male_names.csv' in str(e.value)


@pytest.mark.slow
@needs_data
def test_full_run_reaches_bar():
    import names_textcnn
    assert names_textcnn.main([])['val_acc'] >= 0.92
