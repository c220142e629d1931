"""Hidden tests: relu, relu_backward, leaky_relu."""
import numpy as np
import pytest
from conftest import float64_copies, float64_copy

from grader.testing.checks import assert_matches, assert_shape, checked_call, describe, tolerance


def away_from_zero(rng, shape, dtype="float64"):
    """Normal values with |x| >= 0.1 (the kink of relu is not hit, even by a numeric gradient)."""
    x = rng.normal(size=shape)
    return (np.sign(x) * (np.abs(x) + 0.1)).astype(dtype)


# --- relu ------------------------------------------------------------------------------------------

RELU_CASES = [
    pytest.param(dict(shape=(2, 4, 5, 3), dtype="float64"), id="mixed_signs_4d"),
    pytest.param(dict(shape=(3, 7), dtype="float32"), id="float32_2d"),
]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("relu")
@pytest.mark.parametrize("case", RELU_CASES)
def test_relu_shape(student, rng, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    assert_shape(student.relu(x), x.shape, what="relu output", case=describe(x=x))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("relu")
@pytest.mark.parametrize("case", RELU_CASES)
def test_relu_values(student, reference, rng, mistakes, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    expected = reference.relu(float64_copy(x))
    desc = describe(x=x)

    def check(out):
        assert_matches(out, expected, what="relu output", case=desc, mistakes=lambda: mistakes.relu(x),
                       **tolerance(x))

    checked_call(student, "relu", x, check=check, case=desc, names=("x",))


# --- relu_backward -----------------------------------------------------------------------------------

RELU_BACKWARD_CASES = [
    pytest.param(dict(shape=(2, 3, 4, 2), dtype="float64"), id="mixed_4d"),
    pytest.param(dict(shape=(4, 5), dtype="float32"), id="float32_2d"),
]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("relu_backward")
@pytest.mark.parametrize("case", RELU_BACKWARD_CASES)
def test_relu_backward_shape(student, rng, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    dout = rng.normal(size=x.shape).astype(case["dtype"])
    assert_shape(student.relu_backward(dout, x), x.shape, what="dx", case=describe(dout=dout, x=x))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("relu_backward")
@pytest.mark.parametrize("case", RELU_BACKWARD_CASES)
def test_relu_backward_values(student, reference, rng, mistakes, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    dout = rng.normal(size=x.shape).astype(case["dtype"])
    expected = reference.relu_backward(*float64_copies(dout, x))
    desc = describe(dout=dout, x=x)

    def check(dx):
        assert_matches(dx, expected, what="dx", case=desc, mistakes=lambda: mistakes.relu_backward(dout, x),
                       **tolerance(x))

    checked_call(student, "relu_backward", dout, x, check=check, case=desc, names=("dout", "x"))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("relu_backward", "relu")
@pytest.mark.hidden
def test_relu_backward_numeric(student, rng, mistakes, gradcheck):
    """relu_backward agrees with central differences of the student's own relu."""
    x = away_from_zero(rng, (2, 3))
    dout = rng.normal(size=x.shape)
    desc = describe(dout=dout, x=x)
    gradcheck.assert_matches_numeric(student.relu_backward(dout, x), "relu", (x,), dout=dout, what="dx", case=desc,
                                     mistakes=lambda: mistakes.relu_backward(dout, x))


# --- leaky_relu ----------------------------------------------------------------------------------------

LEAKY_CASES = [
    pytest.param(dict(shape=(2, 4, 5, 3), alpha=None, dtype="float64"), id="default_alpha"),
    pytest.param(dict(shape=(3, 6), alpha=0.2, dtype="float64"), id="alpha_0.2"),
    pytest.param(dict(shape=(2, 3, 4, 2), alpha=0.1, dtype="float32"), id="float32_alpha_0.1"),
]


def leaky_call_kwargs(case):
    return {} if case["alpha"] is None else {"alpha": case["alpha"]}


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("leaky_relu")
@pytest.mark.parametrize("case", LEAKY_CASES)
def test_leaky_relu_shape(student, rng, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    assert_shape(student.leaky_relu(x, **leaky_call_kwargs(case)), x.shape, what="leaky_relu output",
                 case=describe(x=x, **leaky_call_kwargs(case)))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("leaky_relu")
@pytest.mark.parametrize("case", LEAKY_CASES)
def test_leaky_relu_values(student, reference, rng, mistakes, case):
    x = away_from_zero(rng, case["shape"], case["dtype"])
    kwargs = leaky_call_kwargs(case)
    expected = reference.leaky_relu(float64_copy(x), **kwargs)
    desc = describe(x=x, **kwargs)

    def check(out):
        assert_matches(out, expected, what="leaky_relu output", case=desc,
                       mistakes=lambda: mistakes.leaky_relu(x, kwargs.get("alpha", 0.01)), **tolerance(x))

    checked_call(student, "leaky_relu", x, **kwargs, check=check, case=desc, names=("x",))
