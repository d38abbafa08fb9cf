"""mx.io: DataBatch / NDArrayIter behave as MXNet 1.9's (expected batches below were read off
MXNet 1.9.1 for the same inputs)."""
import numpy as np
import pytest

import engine as mx
from engine import gluon, nd

DATA = np.arange(40).reshape((10, 2, 2)).astype('float32')
LABELS = np.arange(10)


def firsts(it):
    """(first element of each sample, labels, pad) for every batch of one epoch."""
    return [(b.data[0].asnumpy()[:, 0, 0].tolist(), b.label[0].asnumpy().tolist(), b.pad) for b in it]


def test_pad_fills_the_last_batch_from_the_start():
    it = mx.io.NDArrayIter(DATA, LABELS, 3, last_batch_handle='pad')
    for _ in range(2):
        assert firsts(it) == [([0, 4, 8], [0, 1, 2], 0), ([12, 16, 20], [3, 4, 5], 0),
                              ([24, 28, 32], [6, 7, 8], 0), ([36, 0, 4], [9, 0, 1], 2)]
        it.reset()


def test_discard_drops_the_incomplete_batch():
    it = mx.io.NDArrayIter(DATA, LABELS, 3, last_batch_handle='discard')
    assert [b[1] for b in firsts(it)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_roll_over_starts_the_next_epoch_with_the_leftover():
    it = mx.io.NDArrayIter(DATA, LABELS, 3, last_batch_handle='roll_over')
    assert [b[1] for b in firsts(it)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    it.reset()
    assert [b[1] for b in firsts(it)] == [[9, 0, 1], [2, 3, 4], [5, 6, 7]]
    it.reset()
    assert [b[1] for b in firsts(it)][0] == [8, 9, 0]
    it.hard_reset()
    assert [b[1] for b in firsts(it)][0] == [0, 1, 2]


def test_shuffle_is_a_permutation_and_keeps_pairs():
    mx.random.seed(0)
    np.random.seed(0)
    it = mx.io.NDArrayIter(DATA, LABELS, 5, shuffle=True)
    seen = []
    for b in it:
        x, y = b.data[0].asnumpy(), b.label[0].asnumpy()
        np.testing.assert_array_equal(x[:, 0, 0], y * 4)
        seen += y.tolist()
    assert sorted(seen) == list(range(10))


def test_named_inputs_sorted_by_name_with_descs():
    it = mx.io.NDArrayIter({'b': DATA, 'a': DATA * 2}, {'z': LABELS}, 4)
    assert [(d.name, d.shape) for d in it.provide_data] == [('a', (4, 2, 2)), ('b', (4, 2, 2))]
    assert [(d.name, d.shape) for d in it.provide_label] == [('z', (4,))]
    b = next(it)
    np.testing.assert_array_equal(b.data[0].asnumpy(), DATA[:4] * 2)
    assert b.data[0].dtype == np.float32 and b.label[0].dtype == np.float32
    assert str(b) == 'DataBatch: data shapes: [(4, 2, 2), (4, 2, 2)] label shapes: [(4,)]'


def test_default_names_and_no_label():
    it = mx.io.NDArrayIter(nd.array(DATA), batch_size=4)
    assert it.provide_data[0].name == 'data' and it.provide_label == []
    assert next(it).label == []
    it = mx.io.NDArrayIter(DATA, LABELS, 4)
    assert it.provide_label[0].name == 'softmax_label'


def test_resize_iter_restarts_the_inner_iterator():
    it = mx.io.ResizeIter(mx.io.NDArrayIter(DATA, LABELS, 3), 6)
    got = [b.label[0].asnumpy().tolist() for b in it]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1], [0, 1, 2], [3, 4, 5]]


def test_data_desc():
    d = mx.io.DataDesc('data', (2, 3))
    assert d.name == 'data' and d.shape == (2, 3) and d.dtype == np.float32 and d.layout == 'NCHW'
    assert mx.io.DataDesc.get_batch_axis('TNC') == 1 and mx.io.DataDesc.get_batch_axis(None) == 0
    [d] = mx.io.DataDesc.get_list([('a', (1, 2))], [('a', np.int32)])
    assert d.dtype == np.int32


@pytest.mark.parametrize('kwargs, words', [
    (dict(last_batch_handle='bogus'), 'last_batch_handle'),
    (dict(label=np.arange(9)), "has 9 samples"),
    (dict(batch_size=0), 'batch_size'),
    (dict(batch_size=11, last_batch_handle='discard'), 'larger than the data'),
])
def test_bad_arguments_are_clear_errors(kwargs, words):
    args = dict(data=DATA, label=LABELS, batch_size=3)
    args.update(kwargs)
    with pytest.raises(mx.MXNetError, match=words):
        mx.io.NDArrayIter(**args)


def test_seed_slide_27_training_loop():
    rng = np.random.RandomState(0)
    x = rng.randn(64, 4).astype('float32')
    y = (x[:, 0] > 0).astype('float32')
    train_data = mx.io.NDArrayIter(x, y, batch_size=16, shuffle=True)
    net = gluon.nn.Dense(2)
    net.initialize(mx.init.Xavier())
    loss_function = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    computation_context = mx.cpu()
    losses = []
    for epoch in range(10):
        train_data.reset()
        for batch in train_data:
            data = batch.data[0].as_in_context(computation_context)
            label = batch.label[0].as_in_context(computation_context)
            with mx.autograd.record():
                prediction = net(data)
                loss = loss_function(prediction, label)
            loss.backward()
            trainer.step(data.shape[0])
            losses.append(loss.mean().asscalar())
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
