"""common.py imports `models`: the two small symbolic networks that test_symbol.py and
test_infer_shape.py build (the checkout of tests/python/common is not needed). The tests check
the node names ('fc1', 'fc2') and, for mlp2, the widths (a 1000-wide hidden layer, 10 outputs)."""
import mxnet as mx


def mlp2():
    x = mx.symbol.Variable('data')
    x = mx.symbol.FullyConnected(data=x, name='fc1', num_hidden=1000)
    x = mx.symbol.Activation(data=x, act_type='relu')
    return mx.symbol.FullyConnected(data=x, name='fc2', num_hidden=10)


def conv():
    x = mx.symbol.Variable('data')
    for i, filters in ((1, 32), (2, 32)):
        x = mx.symbol.Convolution(data=x, name=f'conv{i}', num_filter=filters, kernel=(3, 3),
                                  stride=(2, 2))
        x = mx.symbol.BatchNorm(data=x, name=f'bn{i}')
        x = mx.symbol.Activation(data=x, name=f'relu{i}', act_type='relu')
        x = mx.symbol.Pooling(data=x, name=f'mp{i}', kernel=(2, 2), stride=(2, 2), pool_type='max')
    x = mx.symbol.Flatten(data=x, name='flatten')
    x = mx.symbol.FullyConnected(data=x, name='fc2', num_hidden=10)
    return mx.symbol.SoftmaxOutput(data=x, name='sm')
