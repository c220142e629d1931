"""Hidden tests: conv_output_size, zero_pad, count_conv_params."""
import pytest
from conftest import float64_copy

from grader.testing.checks import assert_matches, assert_scalar_matches, assert_shape, checked_call, describe, tolerance

# --- conv_output_size --------------------------------------------------------------------------

OUTPUT_SIZE_CASES = [
    pytest.param(dict(n=7, k=3, padding="valid", stride=1, dilation=1), id="valid_k3"),
    pytest.param(dict(n=6, k=3, padding=1, stride=1, dilation=1), id="pad1"),
    pytest.param(dict(n=9, k=4, padding=1, stride=2, dilation=1), id="pad1_stride2_even_kernel"),
    pytest.param(dict(n=8, k=3, padding=0, stride=2, dilation=1), id="stride2_not_divisible"),
    pytest.param(dict(n=9, k=3, padding=0, stride=1, dilation=2), id="dilation2"),
    pytest.param(dict(n=10, k=3, padding=2, stride=2, dilation=2), id="dilation2_stride2_pad2"),
    pytest.param(dict(n=5, k=1, padding=0, stride=1, dilation=1), id="kernel1"),
    pytest.param(dict(n=8, k=3, padding="same", stride=2, dilation=1), id="same_stride2_even"),
    pytest.param(dict(n=7, k=4, padding="same", stride=1, dilation=1), id="same_even_kernel"),
    pytest.param(dict(n=10, k=3, padding="same", stride=3, dilation=2), id="same_stride3_dilation2"),
]


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("conv_output_size")
@pytest.mark.parametrize("case", OUTPUT_SIZE_CASES)
def test_conv_output_size_values(student, reference, mistakes, case):
    expected = reference.conv_output_size(**case)
    actual = student.conv_output_size(case["n"], case["k"], padding=case["padding"], stride=case["stride"],
                                      dilation=case["dilation"])
    assert_scalar_matches(actual, expected, what="conv_output_size", case=describe(**case), integer=True,
                          mistakes=lambda: mistakes.conv_output_size(**case))


# --- zero_pad ------------------------------------------------------------------------------------

ZERO_PAD_CASES = [
    pytest.param(dict(shape=(2, 4, 5, 3), pad=1, dtype="float64"), id="int_pad"),
    pytest.param(dict(shape=(1, 3, 3, 1), pad=2, dtype="float64"), id="int_pad_batch1_c1"),
    pytest.param(dict(shape=(2, 4, 6, 2), pad=(1, 2), dtype="float64"), id="pair_pad"),
    pytest.param(dict(shape=(2, 5, 4, 3), pad=((0, 1), (2, 1)), dtype="float32"), id="nested_pad_float32"),
]


def _zero_pad_input(rng, case):
    return rng.normal(size=case["shape"]).astype(case["dtype"])


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("zero_pad")
@pytest.mark.parametrize("case", ZERO_PAD_CASES)
def test_zero_pad_shape(student, reference, rng, mistakes, case):
    x = _zero_pad_input(rng, case)
    out = student.zero_pad(x, case["pad"])
    assert_shape(out, reference.zero_pad(float64_copy(x), case["pad"]).shape, what="zero_pad output",
                 case=describe(x=x, pad=case["pad"]), mistakes=lambda: mistakes.zero_pad(x, case["pad"]))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("zero_pad")
@pytest.mark.parametrize("case", ZERO_PAD_CASES)
def test_zero_pad_values(student, reference, rng, mistakes, case):
    x = _zero_pad_input(rng, case)
    expected = reference.zero_pad(float64_copy(x), case["pad"])
    desc = describe(x=x, pad=case["pad"])

    def check(out):
        assert_matches(out, expected, what="zero_pad output", case=desc,
                       mistakes=lambda: mistakes.zero_pad(x, case["pad"]), **tolerance(x))

    checked_call(student, "zero_pad", x, case["pad"], check=check, case=desc, names=("x", "pad"))


# --- count_conv_params -----------------------------------------------------------------------------

PARAM_CASES = [
    pytest.param(dict(kh=3, kw=3, cin=64, cout=128, use_bias=True), id="vgg_3x3"),
    pytest.param(dict(kh=5, kw=5, cin=1, cout=6, use_bias=True), id="lenet_c1_cin1"),
    pytest.param(dict(kh=1, kw=1, cin=256, cout=64, use_bias=False), id="pointwise_no_bias"),
    pytest.param(dict(kh=3, kw=5, cin=7, cout=11, use_bias=True), id="nonsquare_kernel"),
    pytest.param(dict(kh=7, kw=7, cin=3, cout=64, use_bias=False), id="no_bias_7x7"),
]


@pytest.mark.points(1)
@pytest.mark.category("params")
@pytest.mark.calls("count_conv_params")
@pytest.mark.parametrize("case", PARAM_CASES)
def test_count_conv_params_values(student, reference, mistakes, case):
    expected = reference.count_conv_params(**case)
    actual = student.count_conv_params(case["kh"], case["kw"], case["cin"], case["cout"],
                                       use_bias=case["use_bias"])
    assert_scalar_matches(actual, expected, what="count_conv_params", case=describe(**case), integer=True,
                          mistakes=lambda: mistakes.count_conv_params(**case))
