"""Hidden tests: flatten, flatten_backward, dense_forward, dense_backward."""
import numpy as np
import pytest
from conftest import float64_copies, float64_copy

from grader.testing.checks import assert_matches, assert_shape, assert_tuple, checked_call, describe, tolerance

# --- flatten -------------------------------------------------------------------------------------------
# Every case has C >= 2 and H * W >= 2, so a channels-first order gives different values.

FLATTEN_CASES = [
    pytest.param(dict(shape=(2, 3, 4, 3), dtype="float64"), id="basic"),
    pytest.param(dict(shape=(1, 2, 5, 4), dtype="float64"), id="batch1_nonsquare"),
    pytest.param(dict(shape=(3, 4, 2, 2), dtype="float32"), id="float32"),
]


def flat_size(shape):
    return int(np.prod(shape[1:]))


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("flatten")
@pytest.mark.parametrize("case", FLATTEN_CASES)
def test_flatten_shape(student, rng, case):
    x = rng.normal(size=case["shape"]).astype(case["dtype"])
    assert_shape(student.flatten(x), (x.shape[0], flat_size(x.shape)), what="flatten output", case=describe(x=x))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("flatten")
@pytest.mark.parametrize("case", FLATTEN_CASES)
def test_flatten_values(student, reference, rng, mistakes, case):
    x = rng.normal(size=case["shape"]).astype(case["dtype"])
    expected = reference.flatten(float64_copy(x))
    desc = describe(x=x)

    def check(out):
        assert_matches(out, expected, what="flatten output", case=desc, mistakes=lambda: mistakes.flatten(x),
                       **tolerance(x))

    checked_call(student, "flatten", x, check=check, case=desc, names=("x",))


# --- flatten_backward --------------------------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("flatten_backward")
@pytest.mark.parametrize("case", FLATTEN_CASES)
def test_flatten_backward_shape(student, rng, case):
    shape = case["shape"]
    dout = rng.normal(size=(shape[0], flat_size(shape))).astype(case["dtype"])
    assert_shape(student.flatten_backward(dout, shape), shape, what="dx", case=describe(dout=dout, x_shape=shape))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("flatten_backward")
@pytest.mark.parametrize("case", FLATTEN_CASES)
def test_flatten_backward_values(student, reference, rng, mistakes, case):
    shape = case["shape"]
    dout = rng.normal(size=(shape[0], flat_size(shape))).astype(case["dtype"])
    expected = reference.flatten_backward(float64_copy(dout), shape)
    desc = describe(dout=dout, x_shape=shape)

    def check(dx):
        assert_matches(dx, expected, what="dx", case=desc, mistakes=lambda: mistakes.flatten_backward(dout, shape),
                       **tolerance(dout))

    checked_call(student, "flatten_backward", dout, shape, check=check, case=desc, names=("dout", "x_shape"))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("flatten_backward", "flatten")
@pytest.mark.hidden
def test_flatten_backward_numeric(student, rng, mistakes, gradcheck):
    """flatten_backward agrees with central differences of the student's own flatten."""
    shape = (1, 2, 2, 3)
    x = rng.normal(size=shape)
    dout = rng.normal(size=(1, 12))
    desc = describe(dout=dout, x_shape=shape)
    gradcheck.assert_matches_numeric(student.flatten_backward(dout, shape), "flatten", (x,), dout=dout, what="dx",
                                     case=desc, mistakes=lambda: mistakes.flatten_backward(dout, shape))


# --- dense ------------------------------------------------------------------------------------------------

DENSE_CASES = [
    pytest.param(dict(x=(3, 5), units=4, dtype="float64"), id="basic"),
    pytest.param(dict(x=(1, 6), units=3, dtype="float64"), id="batch1"),
    pytest.param(dict(x=(2, 4), units=4, dtype="float32"), id="float32_square"),
]


def dense_inputs(rng, case):
    n, d = case["x"]
    x = rng.normal(size=(n, d)).astype(case["dtype"])
    w = rng.normal(size=(d, case["units"])).astype(case["dtype"])
    b = rng.normal(size=case["units"]).astype(case["dtype"])
    return x, w, b


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("dense_forward")
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_forward_shape(student, rng, case):
    x, w, b = dense_inputs(rng, case)
    assert_shape(student.dense_forward(x, w, b), (x.shape[0], w.shape[1]), what="dense_forward output",
                 case=describe(x=x, w=w, b=b))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("dense_forward")
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_forward_values(student, reference, rng, mistakes, case):
    x, w, b = dense_inputs(rng, case)
    expected = reference.dense_forward(*float64_copies(x, w, b))
    desc = describe(x=x, w=w, b=b)

    def check(out):
        assert_matches(out, expected, what="dense_forward output", case=desc,
                       mistakes=lambda: mistakes.dense_forward(x, w, b), **tolerance(x))

    checked_call(student, "dense_forward", x, w, b, check=check, case=desc, names=("x", "w", "b"))


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("dense_backward")
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_backward_shape(student, rng, mistakes, case):
    x, w, b = dense_inputs(rng, case)
    dout = rng.normal(size=(x.shape[0], w.shape[1])).astype(case["dtype"])
    desc = describe(dout=dout, x=x, w=w, b=b)
    grads = assert_tuple(student.dense_backward(dout, x, w, b), ("dx", "dw", "db"), fn="dense_backward", case=desc)
    variants = mistakes.dense_backward(dout, x, w, b)
    for name, grad, like in zip(("dx", "dw", "db"), grads, (x, w, b)):
        assert_shape(grad, like.shape, what=name, case=desc, mistakes=variants[name])


@pytest.mark.points(2)
@pytest.mark.category("gradient")
@pytest.mark.calls("dense_backward")
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_backward_values(student, reference, rng, mistakes, case):
    x, w, b = dense_inputs(rng, case)
    dout = rng.normal(size=(x.shape[0], w.shape[1])).astype(case["dtype"])
    expected = reference.dense_backward(*float64_copies(dout, x, w, b))
    desc = describe(dout=dout, x=x, w=w, b=b)

    def check(result):
        grads = assert_tuple(result, ("dx", "dw", "db"), fn="dense_backward", case=desc)
        variants = mistakes.dense_backward(dout, x, w, b)
        for name, grad, exp in zip(("dx", "dw", "db"), grads, expected):
            assert_matches(grad, exp, what=name, case=desc, mistakes=variants[name], **tolerance(x))

    checked_call(student, "dense_backward", dout, x, w, b, check=check, case=desc, names=("dout", "x", "w", "b"))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("dense_backward", "dense_forward")
@pytest.mark.hidden
def test_dense_backward_numeric(student, rng, mistakes, gradcheck):
    """dense_backward agrees with central differences of the student's own dense_forward."""
    x, w, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    dout = rng.normal(size=(2, 2))
    desc = describe(dout=dout, x=x, w=w, b=b)
    grads = assert_tuple(student.dense_backward(dout, x, w, b), ("dx", "dw", "db"), fn="dense_backward", case=desc)
    variants = mistakes.dense_backward(dout, x, w, b)
    for i, name in enumerate(("dx", "dw", "db")):
        gradcheck.assert_matches_numeric(grads[i], "dense_forward", (x, w, b), wrt=i, dout=dout, what=name,
                                         case=desc, mistakes=variants[name])
