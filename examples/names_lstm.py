"""A character-level bidirectional LSTM that tells the gender of Spanish given names (the
recurrent counterpart of names_textcnn.py, same data, encoding and split).

Each name is encoded as names_textcnn does (a start '.', the first 22 characters, '.' padding:
23 tokens). The model

    Embedding(vocab, 32) -> LSTM(64, bidirectional, layout NTC) -> max over time -> Dense(2)

runs the fused gluon.rnn.LSTM layer (one rnn_layer op per direction) and is trained with Adam
(lr 0.003, batch size 32) for 5 epochs on the seeded random 80/20 split of names_textcnn.

    python examples/names_lstm.py                     # hybridized
    python examples/names_lstm.py --eager --epochs 1

Reads ../shared/data/spanish_names/{male,female}_names.csv (or --data-root DIR with both files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon  # noqa: E402
from engine.gluon import nn, rnn  # noqa: E402

import names_textcnn  # noqa: E402
from names_textcnn import load, p_female  # noqa: E402,F401  (same data, encoding and split)


class NameLSTM(gluon.HybridBlock):
    def __init__(self, vocab_size, embedding=32, hidden=64, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embed = nn.Embedding(vocab_size, embedding)
            self.lstm = rnn.LSTM(hidden, bidirectional=True, layout='NTC', input_size=embedding)
            self.out = nn.Dense(2, in_units=2 * hidden)

    def hybrid_forward(self, F, x):
        h = self.lstm(self.embed(x))            # (N, T, 2 * hidden)
        return self.out(F.max(h, axis=1))       # the strongest evidence anywhere in the name


def run(data_root=common.DATA_DIR / 'spanish_names', epochs=5, batch_size=32, lr=3e-3, eager=False,
        seed=0, limit=None, progress=True, verbose=True):
    """Train and evaluate; returns a dict with 'val_acc', 'history', 'seconds', 'net', 'vocab'."""
    common.seed_all(seed)
    (x_train, y_train), (x_valid, y_valid), vocab = load(data_root, seed, limit=limit)
    if verbose:
        print(f'Spanish names: {len(x_train)} training and {len(x_valid)} validation names, '
              f'{len(vocab)} tokens; {common.mode_name(eager)}')
    net = NameLSTM(len(vocab))
    net.initialize(mx.init.Xavier())
    if not eager:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    hist = common.fit(net, trainer, common.loader(x_train, y_train, batch_size), epochs,
                      loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'val_acc': common.accuracy(n, x_valid, y_valid)},
                      desc=f'name lstm ({common.mode_name(eager)})', progress=progress, verbose=verbose)
    return {'val_acc': hist.last()['val_acc'], 'history': hist, 'seconds': hist.seconds, 'net': net,
            'vocab': vocab}


def main(argv=None):
    return names_textcnn.main(argv, __doc__, run, lr=3e-3, title='Bidirectional LSTM on Spanish names')


if __name__ == '__main__':
    main()
