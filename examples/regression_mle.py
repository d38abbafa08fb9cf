"""Maximum-likelihood regression with a predicted, input-dependent noise level.

The seed's TensorFlow Probability example in Gluon with `engine.distributions.Normal`: the data
follow y = 2x + 3 + noise whose standard deviation grows with x (sd = 0.1 + 0.5x, x in [0, 5]).
A Dense(2) layer predicts, for every x, a Normal distribution

    loc = out[:, 0],  scale = 1e-3 + softplus(0.3 * out[:, 1])

and training minimizes the negative log-likelihood -log N(y | loc, scale) with Adam (lr 0.05).
The distribution is built inside the hybridized block, so the whole loss is one compiled graph.

    python examples/regression_mle.py                  # hybridized
    python examples/regression_mle.py --eager --plot regression.png

Full-batch training by default (--batch-size 0); --batch-size B uses mini-batches of B points.

Prints the fitted line (slope, intercept) and the predicted standard deviation at both ends.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

import engine as mx  # noqa: E402
from engine import gluon, nd  # noqa: E402
from engine.distributions import Normal  # noqa: E402
from engine.gluon import nn  # noqa: E402

SLOPE, INTERCEPT = 2.0, 3.0


def make_data(n=500, seed=0):
    """x evenly spaced in [0, 5]; y = 2x + 3 + N(0, (0.1 + 0.5x)^2), with a fixed seed."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 5.0, n)
    y = SLOPE * x + INTERCEPT + rng.normal(0.0, 0.1 + 0.5 * x)
    return x.astype(np.float32)[:, None], y.astype(np.float32)


class NormalRegression(gluon.HybridBlock):
    """x (N, 1) -> the parameters of N(loc(x), scale(x)^2), each of shape (N,)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = nn.Dense(2)

    def distribution(self, F, x):
        out = self.dense(x)
        return Normal(loc=out[:, 0], scale=1e-3 + F.softplus(0.3 * out[:, 1]), F=F)

    def hybrid_forward(self, F, x):
        d = self.distribution(F, x)
        return d.mean, d.stddev


class NegLogLikelihood(gluon.HybridBlock):
    """-log p(y | x) under the model's Normal, one value per sample."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.model = model

    def hybrid_forward(self, F, x, y):
        return -self.model.distribution(F, x).log_prob(y)


def run(epochs=5000, lr=0.05, n=500, eager=False, seed=0, batch_size=0, progress=True, verbose=True):
    """Fit by maximum likelihood (full batch unless 0 < batch_size < n). Returns a dict with
    'slope', 'intercept', 'sd_at_0', 'sd_at_5', 'sd_increasing', 'history', 'seconds', 'data', 'model'."""
    common.seed_all(seed)
    x, y = make_data(n, seed)
    model = NormalRegression()
    nll = NegLogLikelihood(model)
    nll.initialize(mx.init.Xavier())
    if not eager:
        nll.hybridize()
        model.hybridize()
    if verbose:
        print(f'{n} points, y = {SLOPE}x + {INTERCEPT} + noise with sd 0.1 + 0.5x; '
              f'Dense(2) -> Normal, {common.mode_name(eager)}')
    trainer = gluon.Trainer(nll.collect_params(), 'adam', {'learning_rate': lr})
    if 0 < batch_size < n:
        data = common.loader(x, y, batch_size)
    else:
        data = [(nd.array(x), nd.array(y))]
    hist = common.fit(nll, trainer, data, epochs, forward=lambda xb, yb: (nll(xb, yb), None),
                      desc=f'mle ({common.mode_name(eager)})', track_accuracy=False,
                      progress=progress, verbose=verbose, print_every=max(1, epochs // 5))
    grid = np.linspace(0.0, 5.0, 51, dtype=np.float32)[:, None]
    mean, sd = (v.asnumpy() for v in model(nd.array(grid)))
    slope, intercept = np.polyfit(grid[:, 0], mean, 1)
    res = {'slope': float(slope), 'intercept': float(intercept), 'sd_at_0': float(sd[0]),
           'sd_at_5': float(sd[-1]), 'sd_increasing': bool(np.all(np.diff(sd) > 0)),
           'nll': hist.step_loss[-1], 'history': hist, 'seconds': hist.seconds, 'data': (x, y),
           'grid': (grid[:, 0], mean, sd), 'model': model}
    return res


def plot(res, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    (x, y), (g, mean, sd) = res['data'], res['grid']
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={'width_ratios': [2, 1]})
    a.scatter(x[:, 0], y, s=6, alpha=0.5, label='data')
    a.plot(g, mean, color='C1', label=f'predicted mean ({res["slope"]:.2f}x + {res["intercept"]:.2f})')
    a.fill_between(g, mean - 2 * sd, mean + 2 * sd, color='C1', alpha=0.15, label='mean +- 2 sd')
    a.plot(g, SLOPE * g + INTERCEPT, 'k--', label=f'truth ({SLOPE:g}x + {INTERCEPT:g})')
    a.plot(g, SLOPE * g + INTERCEPT + 2 * (0.1 + 0.5 * g), 'k:', lw=0.8, label='truth +- 2 sd')
    a.plot(g, SLOPE * g + INTERCEPT - 2 * (0.1 + 0.5 * g), 'k:', lw=0.8)
    a.set_xlabel('x')
    a.set_ylabel('y')
    a.legend(loc='upper left', fontsize=8)
    loss = np.asarray(res['history'].step_loss)
    b.plot(loss)
    b.set_ylim(loss.min() - 0.1, max(np.percentile(loss, 95), loss.min() + 0.5))
    b.set_xlabel('step')
    b.set_ylabel('negative log-likelihood (mean)')
    b.grid(linestyle='dotted')
    fig.tight_layout()
    common.save_figure(fig, path)


def main(argv=None):
    p = common.parser(__doc__, epochs=5000, batch_size=0, lr=0.05)
    p.add_argument('--points', type=int, default=500, help='number of data points (default %(default)s)')
    args = p.parse_args(argv)
    res = run(args.epochs, args.lr, args.points, args.eager, args.seed, args.batch_size)
    print(f'fitted mean: {res["slope"]:.3f} x + {res["intercept"]:.3f} (truth {SLOPE:g} x + {INTERCEPT:g})')
    print(f'predicted sd: {res["sd_at_0"]:.3f} at x=0, {res["sd_at_5"]:.3f} at x=5 (truth 0.1 and 2.6); '
          f'increasing with x: {res["sd_increasing"]}')
    print(f'final negative log-likelihood {res["nll"]:.4f} ({common.mode_name(args.eager)}, '
          f'{res["seconds"]:.1f} s)')
    if args.plot:
        plot(res, args.plot)
    return res


if __name__ == '__main__':
    main()
