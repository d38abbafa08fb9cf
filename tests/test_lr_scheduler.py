"""Learning-rate schedules at their key points, and OneCycle against PyTorch's OneCycleLR."""
import math

import pytest

from engine import lr_scheduler as lrs
from engine.base import MXNetError


def test_linear_and_constant_warmup():
    s = lrs.FactorScheduler(step=100, base_lr=0.1, warmup_steps=5, warmup_begin_lr=0.0)
    assert s(0) == 0.0
    assert s(2) == pytest.approx(0.04)
    assert s(4) == pytest.approx(0.08)
    assert s(5) == pytest.approx(0.1)  # warmup ends: the base rate
    c = lrs.FactorScheduler(step=100, base_lr=0.1, warmup_steps=5, warmup_begin_lr=0.01,
                            warmup_mode='constant')
    assert c(3) == 0.01 and c(5) == 0.1


def test_factor_scheduler_steps_and_floor():
    s = lrs.FactorScheduler(step=10, factor=0.5, base_lr=1.0, stop_factor_lr=0.2)
    assert [s(n) for n in (1, 10)] == [1.0, 1.0]
    assert s(11) == 0.5 and s(20) == 0.5
    assert s(21) == 0.25
    assert s(31) == 0.2 and s(1000) == 0.2  # never below stop_factor_lr
    # resuming at a large update count applies every decay at once
    assert lrs.FactorScheduler(step=10, factor=0.5, base_lr=1.0)(35) == 0.125


def test_multifactor_scheduler():
    s = lrs.MultiFactorScheduler(step=[5, 8], factor=0.1, base_lr=1.0)
    assert s(1) == 1.0 and s(5) == 1.0
    assert s(6) == pytest.approx(0.1) and s(8) == pytest.approx(0.1)
    assert s(9) == pytest.approx(0.01) and s(100) == pytest.approx(0.01)


def test_poly_scheduler():
    s = lrs.PolyScheduler(max_update=10, base_lr=1.0, pwr=2, final_lr=0.0)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.25)
    assert s(10) == pytest.approx(0.0) and s(20) == pytest.approx(0.0)


def test_cosine_scheduler_with_warmup():
    s = lrs.CosineScheduler(max_update=100, base_lr=1.0, final_lr=0.1, warmup_steps=10)
    assert s(5) == pytest.approx(0.5)     # linear warmup from 0
    assert s(10) == pytest.approx(1.0)    # warmup end: the peak
    assert s(55) == pytest.approx(0.55)   # half way down the cosine
    assert s(100) == pytest.approx(0.1)   # the final rate ...
    assert s(150) == pytest.approx(0.1)   # ... kept afterwards


def test_one_cycle_key_points():
    s = lrs.OneCycleScheduler(max_update=100, max_lr=0.1, pct_start=0.3, div_factor=25,
                              final_div_factor=1e4)
    assert s(1) == pytest.approx(0.1 / 25)                 # first update: the initial rate
    assert s(30) == pytest.approx(0.1)                     # the peak at pct_start
    assert s(29) < 0.1 and s(31) < 0.1
    assert s(100) == pytest.approx(0.1 / 25 / 1e4)         # final rate
    assert s(500) == pytest.approx(0.1 / 25 / 1e4)
    assert s.momentum(1) == pytest.approx(0.95) and s.momentum(30) == pytest.approx(0.85)
    assert s.momentum(100) == pytest.approx(0.95)
    lin = lrs.OneCycleScheduler(max_update=11, max_lr=1.0, pct_start=0.0, div_factor=1,
                                final_div_factor=1e9, anneal_strategy='linear')
    for n in (1, 4, 11):  # pct_start 0: PyTorch's warmup phase ends at step -1, so pct = n / 11
        assert lin(n) == pytest.approx(1 - n / 11, abs=1e-8)
    assert lrs.OneCycleScheduler(10, 0.1, cycle_momentum=False).momentum(3) is None
    three = lrs.OneCycleScheduler(max_update=100, max_lr=0.1, three_phase=True)
    assert three(30) == pytest.approx(0.1) and three(59) == pytest.approx(0.004)


def test_one_cycle_base_lr_is_max_lr():
    s = lrs.OneCycleScheduler(max_update=10, max_lr=0.1)
    s.base_lr = 0.5
    assert s.max_lr == 0.5 and s(10 * 0.3) == pytest.approx(0.5)


@pytest.mark.parametrize('make', [
    lambda: lrs.FactorScheduler(step=0),
    lambda: lrs.FactorScheduler(step=5, factor=2.0),
    lambda: lrs.MultiFactorScheduler(step=[5, 3]),
    lambda: lrs.MultiFactorScheduler(step=[]),
    lambda: lrs.CosineScheduler(max_update=10, warmup_mode='exp'),
    lambda: lrs.CosineScheduler(max_update=10, base_lr=0.1, warmup_begin_lr=0.5),
    lambda: lrs.PolyScheduler(max_update=0),
    lambda: lrs.OneCycleScheduler(max_update=10, pct_start=1.5),
    lambda: lrs.OneCycleScheduler(max_update=10, anneal_strategy='exp'),
])
def test_bad_arguments_raise(make):
    with pytest.raises(MXNetError):
        make()


@pytest.mark.torch
@pytest.mark.parametrize('kw', [{}, {'anneal_strategy': 'linear', 'pct_start': 0.25},
                                {'three_phase': True, 'div_factor': 10.0}])
def test_one_cycle_matches_torch(kw):
    torch = pytest.importorskip('torch')
    total = 37
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=total, **kw)
    ours = lrs.OneCycleScheduler(max_update=total, max_lr=0.3, **kw)
    for n in range(1, total + 1):  # optimizer update n uses torch's step n - 1
        group = opt.param_groups[0]
        assert math.isclose(ours(n), group['lr'], rel_tol=1e-12), (n, kw)
        assert math.isclose(ours.momentum(n), group['momentum'], rel_tol=1e-12), (n, kw)
        opt.step()
        ref.step()
