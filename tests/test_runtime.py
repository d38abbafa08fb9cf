"""engine.runtime answers MXNet's Features() queries."""
import pytest

import engine as mx
from engine import runtime


def test_features_answer_by_name_case_insensitively():
    f = runtime.Features()
    assert f.is_enabled('CUDA') == (mx.num_gpus() > 0) == f.is_enabled('cuda')
    assert f.is_enabled('INT64_TENSOR_SIZE') and not f.is_enabled('MKLDNN')
    assert [x.name for x in runtime.feature_list()] == list(f)
    with pytest.raises(mx.MXNetError, match="Feature 'WARP_DRIVE' is unknown"):
        f.is_enabled('WARP_DRIVE')
