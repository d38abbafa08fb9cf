"""test_module.py imports `train_model` and `prepare_bucketing_data` from MXNet's
tests/python/train/test_bucketing.py, which is not part of the unittest folder. Standing in for
it lets the file collect; the one test that trains with them fails, naming what is missing."""


def _absent(*args, **kwargs):
    raise NotImplementedError("tests/python/train/test_bucketing.py is not part of MXNet's "
                              'unittest folder that this harness runs')


train_model = prepare_bucketing_data = _absent
