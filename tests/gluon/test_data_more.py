"""DataLoader options beyond test_data.py: auto_reload (the next pass is prepared ahead)."""
import numpy as np
import pytest

import engine as mx
from engine import gluon


class _Counting(gluon.data.Dataset):
    def __init__(self, n):
        self.n = n
        self.reads = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.reads += 1
        return mx.nd.full((3,), i)


@pytest.mark.parametrize('workers,threads', [(0, False), (2, True), (2, False)])
@pytest.mark.parametrize('auto_reload', [True, False])
def test_auto_reload_gives_every_pass_in_order(workers, threads, auto_reload):
    loader = gluon.data.DataLoader(_Counting(7), batch_size=2, num_workers=workers,
                                   thread_pool=threads, auto_reload=auto_reload)
    for _ in range(3):
        got = [b.asnumpy() for b in loader]
        assert [b.shape for b in got] == [(2, 3)] * 3 + [(1, 3)]
        np.testing.assert_array_equal(np.concatenate(got)[:, 0], np.arange(7))


def test_auto_reload_prefetches_before_iteration_with_threads():
    ds = _Counting(4)
    loader = gluon.data.DataLoader(ds, batch_size=1, num_workers=1, thread_pool=True,
                                   auto_reload=True)
    import time
    deadline = time.monotonic() + 10
    while ds.reads == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ds.reads > 0  # loading started at construction
    assert len(list(loader)) == 4
    # a second pass was started as the first one ended; it still yields everything once
    assert len(list(loader)) == 4


def test_auto_reload_abandoned_pass_starts_fresh():
    loader = gluon.data.DataLoader(_Counting(5), batch_size=1, auto_reload=True)
    it = iter(loader)
    assert next(it).asnumpy()[0, 0] == 0
    del it
    assert [b.asnumpy()[0, 0] for b in loader] == [0, 1, 2, 3, 4]
