"""Building blocks shared by the vision models."""
from ...block import HybridBlock
from ..model_store import DEFAULT_ROOT, load_pretrained  # noqa: F401


class HybridConcurrent(HybridBlock):
    """Runs every child on the same input and concatenates their outputs along `axis`
    (MXNet's gluon.contrib.nn.HybridConcurrent; Inception, SqueezeNet and DenseNet use it)."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix, params)
        self.axis = axis

    def add(self, *blocks):
        for b in blocks:
            self.register_child(b)
        return self

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def hybrid_forward(self, F, x):
        return F.concat(*[block(x) for block in self._children.values()], dim=self.axis)


def finish(net, name, pretrained, ctx, root):
    """The common tail of every constructor: load `<root>/<name>.params` when asked."""
    if pretrained:
        load_pretrained(net, name, ctx=ctx, root=root)
    return net
