"""Hidden tests: conv2d_forward, conv2d_backward."""
import pytest
from conftest import float64_copies

from grader.testing.checks import assert_matches, assert_shape, assert_tuple, checked_call, describe, tolerance


def case_param(id, x, w, stride=1, padding=0, dilation=1, dtype="float64"):
    return pytest.param(dict(x=x, w=w, stride=stride, padding=padding, dilation=dilation, dtype=dtype), id=id)


def conv_inputs(rng, case):
    x = rng.normal(size=case["x"]).astype(case["dtype"])
    w = rng.normal(size=case["w"]).astype(case["dtype"])
    b = rng.normal(size=case["w"][-1]).astype(case["dtype"])
    return x, w, b


def params(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])


FORWARD_CASES = [
    case_param("valid_basic", (2, 6, 6, 3), (3, 3, 3, 4), padding="valid"),
    case_param("nonsquare_input_kernel", (2, 7, 5, 2), (3, 2, 2, 3), padding="valid"),
    case_param("batch1_cin1_pad1", (1, 5, 6, 1), (3, 3, 1, 2), padding=1),
    case_param("kernel1x1", (2, 4, 5, 3), (1, 1, 3, 4), padding="valid"),
    case_param("pad1_stride2", (2, 7, 7, 2), (3, 3, 2, 2), stride=2, padding=1),
    case_param("tuple_stride_padding", (2, 8, 6, 2), (3, 2, 2, 3), stride=(2, 1), padding=(1, 2)),
    case_param("same_stride1", (2, 5, 6, 2), (3, 3, 2, 2), padding="same"),
    case_param("same_stride2_even", (2, 8, 6, 3), (3, 3, 3, 2), stride=2, padding="same"),
    case_param("same_even_kernel", (2, 5, 6, 2), (2, 4, 2, 3), padding="same"),
    case_param("dilation2", (2, 8, 7, 2), (3, 3, 2, 2), padding="valid", dilation=2),
    case_param("dilation_tuple_same_stride2", (2, 7, 8, 2), (2, 3, 2, 2), stride=2, padding="same",
               dilation=(2, 1)),
    case_param("float32_pad1", (2, 5, 5, 3), (3, 3, 3, 2), padding=1, dtype="float32"),
]

BACKWARD_CASES = [
    case_param("valid_basic", (2, 6, 6, 3), (3, 3, 3, 4), padding="valid"),
    case_param("nonsquare_batch1_cin1_pad1", (1, 7, 5, 1), (3, 2, 1, 3), padding=1),
    case_param("kernel1x1_stride2", (2, 5, 6, 3), (1, 1, 3, 2), stride=2, padding="valid"),
    case_param("tuple_stride_padding", (2, 8, 6, 2), (3, 2, 2, 3), stride=(2, 1), padding=(1, 2)),
    case_param("same_stride2_even", (2, 8, 6, 3), (3, 3, 3, 2), stride=2, padding="same"),
    case_param("same_even_kernel", (2, 5, 6, 2), (2, 4, 2, 3), padding="same"),
    case_param("dilation2_same", (2, 7, 6, 2), (3, 2, 2, 2), padding="same", dilation=2),
    case_param("float32_pad1_stride2", (2, 6, 5, 3), (3, 3, 3, 2), stride=2, padding=1, dtype="float32"),
]

NUMERIC_CASES = [  # tiny: every element of x, w and b is perturbed through the student's forward
    case_param("same_stride2", (1, 4, 3, 2), (2, 3, 2, 1), stride=2, padding="same"),
    case_param("dilation2", (1, 5, 4, 1), (2, 2, 1, 2), padding="valid", dilation=2),
]


# --- conv2d_forward --------------------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("conv2d_forward")
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_conv2d_forward_shape(student, reference, rng, mistakes, case):
    x, w, b = conv_inputs(rng, case)
    expected = reference.conv2d_forward(*float64_copies(x, w, b), **params(case))
    out = student.conv2d_forward(x, w, b, **params(case))
    assert_shape(out, expected.shape, what="conv2d_forward output", case=describe(x=x, w=w, b=b, **params(case)),
                 mistakes=lambda: mistakes.conv2d_forward(x, w, b, **params(case)))


@pytest.mark.points(2)
@pytest.mark.category("value")
@pytest.mark.calls("conv2d_forward")
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_conv2d_forward_values(student, reference, rng, mistakes, case):
    x, w, b = conv_inputs(rng, case)
    expected = reference.conv2d_forward(*float64_copies(x, w, b), **params(case))
    desc = describe(x=x, w=w, b=b, **params(case))

    def check(out):
        assert_matches(out, expected, what="conv2d_forward output", case=desc,
                       mistakes=lambda: mistakes.conv2d_forward(x, w, b, **params(case)), **tolerance(x))

    checked_call(student, "conv2d_forward", x, w, b, **params(case), check=check, case=desc,
                 names=("x", "w", "b"))


# --- conv2d_backward -------------------------------------------------------------------------------

def backward_inputs(rng, reference, case):
    x, w, b = conv_inputs(rng, case)
    out_shape = reference.conv2d_forward(*float64_copies(x, w, b), **params(case)).shape
    dout = rng.normal(size=out_shape).astype(case["dtype"])
    return dout, x, w, b


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("conv2d_backward")
@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_conv2d_backward_shape(student, reference, rng, mistakes, case):
    dout, x, w, b = backward_inputs(rng, reference, case)
    desc = describe(dout=dout, x=x, w=w, b=b, **params(case))
    grads = assert_tuple(student.conv2d_backward(dout, x, w, b, **params(case)), ("dx", "dw", "db"),
                         fn="conv2d_backward", case=desc)
    variants = mistakes.conv2d_backward(dout, x, w, b, **params(case))
    for name, grad, like in zip(("dx", "dw", "db"), grads, (x, w, b)):
        assert_shape(grad, like.shape, what=name, case=desc, mistakes=variants[name])


@pytest.mark.points(2)
@pytest.mark.category("gradient")
@pytest.mark.calls("conv2d_backward")
@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_conv2d_backward_values(student, reference, rng, mistakes, case):
    dout, x, w, b = backward_inputs(rng, reference, case)
    expected = reference.conv2d_backward(*float64_copies(dout, x, w, b), **params(case))
    desc = describe(dout=dout, x=x, w=w, b=b, **params(case))

    def check(result):
        grads = assert_tuple(result, ("dx", "dw", "db"), fn="conv2d_backward", case=desc)
        variants = mistakes.conv2d_backward(dout, x, w, b, **params(case))
        for name, grad, exp in zip(("dx", "dw", "db"), grads, expected):
            assert_matches(grad, exp, what=name, case=desc, mistakes=variants[name], **tolerance(x))

    checked_call(student, "conv2d_backward", dout, x, w, b, **params(case), check=check, case=desc,
                 names=("dout", "x", "w", "b"))


@pytest.mark.points(3)
@pytest.mark.category("gradient")
@pytest.mark.calls("conv2d_backward", "conv2d_forward")
@pytest.mark.parametrize("case", NUMERIC_CASES)
@pytest.mark.hidden
def test_conv2d_backward_numeric(student, reference, rng, mistakes, gradcheck, case):
    """conv2d_backward agrees with central differences of the student's own conv2d_forward."""
    dout, x, w, b = backward_inputs(rng, reference, case)
    desc = describe(dout=dout, x=x, w=w, b=b, **params(case))
    grads = assert_tuple(student.conv2d_backward(dout, x, w, b, **params(case)), ("dx", "dw", "db"),
                         fn="conv2d_backward", case=desc)
    variants = mistakes.conv2d_backward(dout, x, w, b, **params(case))
    for i, name in enumerate(("dx", "dw", "db")):
        gradcheck.assert_matches_numeric(grads[i], "conv2d_forward", (x, w, b), params(case), wrt=i, dout=dout,
                                         what=name, case=desc, mistakes=variants[name], atol=1e-5)
