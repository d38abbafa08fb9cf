"""A character-level CNN that tells the gender of Spanish given names (the seed's text CNN).

Recipe of the seed notebook: names lower-cased, spaces -> '_', duplicates dropped; each name is
encoded as a start '.' followed by its first 22 characters, padded with '.' (23 tokens); the
vocabulary is '.' plus every character of the data. The model

    Embedding(vocab, 10) -> reshape (N, 1, 23*10)
    -> Conv1D(128 channels, kernel 4*10, stride 10)   (one filter position per 4-character window)
    -> ReLU -> max-pool over time -> Dense(256) -> ReLU -> Dropout(0.5) -> Dense(2)

is initialized as PyTorch initializes it and trained with Adam (lr 0.001, batch size 32) for
5 epochs on a seeded random 80/20 split.

    python examples/names_textcnn.py                     # hybridized
    python examples/names_textcnn.py --eager --plot names.png

Reads ../shared/data/spanish_names/{male,female}_names.csv (or --data-root DIR with both files).
"""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon, nd  # noqa: E402
from engine.gluon import nn  # noqa: E402

MAX_LEN = 22
SEQ_LEN = MAX_LEN + 1          # the leading '.' start marker + 22 characters
FILES = {'M': 'male_names.csv', 'F': 'female_names.csv'}


def read_names(data_root=common.DATA_DIR / 'spanish_names'):
    """[(name, 'M' or 'F')] in file order (male first), cleaned and without duplicate pairs."""
    rows, seen = [], set()
    for gender, fname in FILES.items():
        path = common.require(os.path.join(str(data_root), fname), f'the Spanish names file {fname}')
        with open(path, newline='', encoding='utf-8') as f:
            for row in csv.DictReader(f):
                name = (row.get('name') or '').strip()
                if not name:
                    continue
                key = (name.replace(' ', '_').lower(), gender)
                if key not in seen:
                    seen.add(key)
                    rows.append(key)
    return rows


class Vocabulary:
    def __init__(self, names):
        self.chars = ['.'] + sorted({c for n in names for c in n} - {'.'})
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, name):
        """'.' + the first 22 known characters of `name`, padded with '.' to 23 token ids."""
        kept = [c for c in name if c in self.index][:MAX_LEN]
        text = '.' + ''.join(kept) + '.' * (MAX_LEN - len(kept))
        return [self.index[c] for c in text]

    def decode(self, ids):
        return ''.join(self.chars[int(i)] for i in ids)


def load(data_root=common.DATA_DIR / 'spanish_names', seed=0, valid_fraction=0.2, limit=None):
    """(x_train, y_train), (x_valid, y_valid), vocabulary; x are (N, 23) int32 token ids, y 1 = F."""
    rows = read_names(data_root)
    vocab = Vocabulary([n for n, _ in rows])
    x = np.array([vocab.encode(n) for n, _ in rows], dtype=np.int32)
    y = np.array([1 if g == 'F' else 0 for _, g in rows], dtype=np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    if limit is not None:
        order = order[:limit]
    n_valid = int(round(valid_fraction * len(order)))
    t, v = order[n_valid:], order[:n_valid]
    return (x[t], y[t]), (x[v], y[v]), vocab


class TextCNN(gluon.HybridBlock):
    def __init__(self, vocab_size, embedding=10, context=4, channels=128, hidden=256, dropout=0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self._emb = embedding
        with self.name_scope():
            self.embed = nn.Embedding(vocab_size, embedding)
            # a kernel spanning `context` embedded characters, moving one character at a time
            self.conv = nn.Conv1D(channels, context * embedding, strides=embedding, activation='relu')
            self.pool = nn.GlobalMaxPool1D()          # max over time: which n-grams occur at all
            self.head = nn.HybridSequential()
            self.head.add(nn.Flatten(), nn.Dense(hidden, activation='relu'), nn.Dropout(dropout),
                          nn.Dense(2))

    def init_like_pytorch(self):
        """PyTorch's default initialization, which the seed notebook used: embeddings N(0, 1),
        convolution and dense weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (biases start at 0)."""
        self.embed.initialize(mx.init.Normal(1.0))
        for block in (self.conv, self.head):
            block.initialize(mx.init.Xavier(rnd_type='uniform', factor_type='in', magnitude=1))

    def hybrid_forward(self, F, x):
        e = self.embed(x)                                     # (N, 23, 10)
        e = F.reshape(e, (-1, 1, x.shape[1] * self._emb))     # (N, 1, 230)
        return self.head(self.pool(self.conv(e)))


def run(data_root=common.DATA_DIR / 'spanish_names', epochs=5, batch_size=32, lr=1e-3, eager=False,
        seed=0, limit=None, progress=True, verbose=True):
    """Train and evaluate; returns a dict with 'val_acc', 'history', 'seconds', 'net', 'vocab'."""
    common.seed_all(seed)
    (x_train, y_train), (x_valid, y_valid), vocab = load(data_root, seed, limit=limit)
    if verbose:
        print(f'Spanish names: {len(x_train)} training and {len(x_valid)} validation names, '
              f'{len(vocab)} tokens "{"".join(vocab.chars)}"; {common.mode_name(eager)}')
    net = TextCNN(len(vocab))
    net.init_like_pytorch()
    if not eager:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr})
    hist = common.fit(net, trainer, common.loader(x_train, y_train, batch_size), epochs,
                      loss_fn=gluon.loss.SoftmaxCrossEntropyLoss(),
                      evaluate=lambda n: {'val_acc': common.accuracy(n, x_valid, y_valid)},
                      desc=f'text cnn ({common.mode_name(eager)})', progress=progress, verbose=verbose)
    return {'val_acc': hist.last()['val_acc'], 'history': hist, 'seconds': hist.seconds, 'net': net,
            'vocab': vocab}


def p_female(net, vocab, names):
    x = nd.array(np.array([vocab.encode(n) for n in names], dtype=np.int32), dtype='int32')
    return nd.softmax(net(x), axis=1).asnumpy()[:, 1]


def main(argv=None, doc=__doc__, train=None, lr=1e-3, title='Text CNN on Spanish names'):
    """The command line of this example (names_lstm.py reuses it with its own model)."""
    p = common.parser(doc, epochs=5, batch_size=32, lr=lr, data_root=common.DATA_DIR / 'spanish_names')
    args = p.parse_args(argv)
    res = (train or run)(args.data_root, args.epochs, args.batch_size, args.lr, args.eager, args.seed)
    print(f'validation accuracy: {100 * res["val_acc"]:.2f}% ({common.mode_name(args.eager)}, '
          f'{res["seconds"]:.1f} s of training)')
    names = ['maria', 'clara', 'maria_clara', 'tuco', 'salamanca', 'tuco_salamanca']
    print('name                p(F | name)')
    for n, pf in zip(names, p_female(res['net'], res['vocab'], names)):
        print(f'{n:<20}{pf:.3f}')
    if args.plot:
        common.plot_history(res['history'], args.plot, title)
    return res


if __name__ == '__main__':
    main()
