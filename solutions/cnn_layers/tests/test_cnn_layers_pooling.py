"""Hidden tests: maxpool2d_forward, maxpool2d_backward, global_avg_pool."""
import numpy as np
import pytest
from conftest import float64_copies, float64_copy, pair, same_pad_totals

from grader.testing.checks import assert_matches, assert_shape, checked_call, describe, tolerance


def pool_case(id, x, pool_size, stride=None, padding="valid", negative=False, dtype="float64"):
    return pytest.param(dict(x=x, pool_size=pool_size, stride=stride, padding=padding, negative=negative,
                             dtype=dtype), id=id)


def pool_input(rng, case):
    """Distinct values (no ties, even in float32, even after a 1e-3 perturbation), shuffled. Where windows
    overlap, the largest value sits where they do, so that every random draw tests the overlap."""
    shape = case["x"]
    base = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + rng.uniform(0.0, 0.05, size=shape)
    x = -base - 0.5 if case["negative"] else base - base.mean()
    shared = most_covered(case)
    if shared is not None:
        x[:, shared[0], shared[1], :] = x.max() + 0.1  # still negative in the all-negative cases
    return x.astype(case["dtype"])


def most_covered(case):
    """The (row, col) that the most pooling windows cover, if more than one window covers it, else None."""
    _, height, width, _ = case["x"]
    (kh, kw), (sh, sw) = pair(case["pool_size"]), pair(case["stride"] or case["pool_size"])
    if case["padding"] == "same":
        th, tw = same_pad_totals((height, width), (kh, kw), (sh, sw))
        top, left, out_h, out_w = th // 2, tw // 2, -(-height // sh), -(-width // sw)
    else:
        top, left, out_h, out_w = 0, 0, (height - kh) // sh + 1, (width - kw) // sw + 1
    covered = np.zeros((height, width), dtype=int)
    for i in range(out_h):
        for j in range(out_w):
            rows, cols = slice(max(0, i * sh - top), i * sh - top + kh), slice(max(0, j * sw - left), j * sw - left + kw)
            covered[rows, cols] += 1
    row, col = np.unravel_index(np.argmax(covered), covered.shape)
    return (int(row), int(col)) if covered[row, col] > 1 else None


def params(case):
    return dict(pool_size=case["pool_size"], stride=case["stride"], padding=case["padding"])


FORWARD_CASES = [
    pool_case("valid_2x2", (2, 6, 8, 3), 2),
    pool_case("nonsquare_pool", (2, 7, 9, 2), (2, 3)),
    pool_case("pool3_stride2_overlap", (2, 7, 7, 2), 3, stride=2),
    pool_case("tuple_stride", (1, 6, 7, 3), 2, stride=(1, 2)),
    pool_case("batch1_c1_odd", (1, 5, 7, 1), 2),
    pool_case("same_all_negative", (2, 7, 6, 3), 3, stride=2, padding="same", negative=True),
    pool_case("same_stride2_even_negative", (2, 8, 6, 2), 3, stride=2, padding="same", negative=True),
    pool_case("float32_stride2", (2, 6, 6, 2), 2, stride=2, dtype="float32"),
]

BACKWARD_CASES = [
    pool_case("valid_2x2", (2, 6, 8, 3), 2),
    pool_case("nonsquare_pool", (2, 7, 9, 2), (2, 3)),
    pool_case("pool3_stride2_overlap", (2, 7, 7, 2), 3, stride=2),
    pool_case("tuple_stride", (1, 6, 7, 3), 2, stride=(1, 2)),
    pool_case("same_all_negative", (2, 7, 6, 3), 3, stride=2, padding="same", negative=True),
    pool_case("float32_stride2", (2, 6, 6, 2), 2, stride=2, dtype="float32"),
]

NUMERIC_CASES = [
    pool_case("overlap", (1, 5, 5, 1), 3, stride=2),
    pool_case("same_negative", (1, 3, 5, 1), 2, stride=2, padding="same", negative=True),
]


# --- maxpool2d_forward ------------------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("maxpool2d_forward")
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_maxpool2d_forward_shape(student, reference, rng, mistakes, case):
    x = pool_input(rng, case)
    expected = reference.maxpool2d_forward(float64_copy(x), **params(case))
    assert_shape(student.maxpool2d_forward(x, **params(case)), expected.shape, what="maxpool2d_forward output",
                 case=describe(x=x, **params(case)), mistakes=lambda: mistakes.maxpool2d_forward(x, **params(case)))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("maxpool2d_forward")
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_maxpool2d_forward_values(student, reference, rng, mistakes, case):
    x = pool_input(rng, case)
    expected = reference.maxpool2d_forward(float64_copy(x), **params(case))
    desc = describe(x=x, **params(case))

    def check(out):
        assert_matches(out, expected, what="maxpool2d_forward output", case=desc,
                       mistakes=lambda: mistakes.maxpool2d_forward(x, **params(case)), **tolerance(x))

    checked_call(student, "maxpool2d_forward", x, **params(case), check=check, case=desc, names=("x",))


# --- maxpool2d_backward -------------------------------------------------------------------------------

def backward_inputs(rng, reference, case):
    x = pool_input(rng, case)
    out_shape = reference.maxpool2d_forward(float64_copy(x), **params(case)).shape
    return rng.normal(size=out_shape).astype(case["dtype"]), x


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("maxpool2d_backward")
@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_maxpool2d_backward_shape(student, reference, rng, mistakes, case):
    dout, x = backward_inputs(rng, reference, case)
    assert_shape(student.maxpool2d_backward(dout, x, **params(case)), x.shape, what="dx",
                 case=describe(dout=dout, x=x, **params(case)),
                 mistakes=lambda: mistakes.maxpool2d_backward(dout, x, **params(case)))


@pytest.mark.points(2)
@pytest.mark.category("gradient")
@pytest.mark.calls("maxpool2d_backward")
@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_maxpool2d_backward_values(student, reference, rng, mistakes, case):
    dout, x = backward_inputs(rng, reference, case)
    expected = reference.maxpool2d_backward(*float64_copies(dout, x), **params(case))
    desc = describe(dout=dout, x=x, **params(case))

    def check(dx):
        assert_matches(dx, expected, what="dx", case=desc,
                       mistakes=lambda: mistakes.maxpool2d_backward(dout, x, **params(case)), **tolerance(x))

    checked_call(student, "maxpool2d_backward", dout, x, **params(case), check=check, case=desc,
                 names=("dout", "x"))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("maxpool2d_backward", "maxpool2d_forward")
@pytest.mark.parametrize("case", NUMERIC_CASES)
@pytest.mark.hidden
def test_maxpool2d_backward_numeric(student, reference, rng, mistakes, gradcheck, case):
    """maxpool2d_backward agrees with central differences of the student's own maxpool2d_forward."""
    dout, x = backward_inputs(rng, reference, case)
    desc = describe(dout=dout, x=x, **params(case))
    gradcheck.assert_matches_numeric(student.maxpool2d_backward(dout, x, **params(case)), "maxpool2d_forward", (x,),
                                     params(case), dout=dout, what="dx", case=desc,
                                     mistakes=lambda: mistakes.maxpool2d_backward(dout, x, **params(case)))


# --- global_avg_pool -----------------------------------------------------------------------------------

GAP_CASES = [
    pytest.param(dict(shape=(2, 4, 5, 3), dtype="float64"), id="basic"),
    pytest.param(dict(shape=(1, 3, 2, 1), dtype="float64"), id="batch1_c1"),
    pytest.param(dict(shape=(3, 5, 4, 2), dtype="float32"), id="float32"),
]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("global_avg_pool")
@pytest.mark.parametrize("case", GAP_CASES)
def test_global_avg_pool_shape(student, rng, mistakes, case):
    x = rng.normal(size=case["shape"]).astype(case["dtype"])
    assert_shape(student.global_avg_pool(x), (x.shape[0], x.shape[3]), what="global_avg_pool output",
                 case=describe(x=x), mistakes=lambda: mistakes.global_avg_pool(x))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("global_avg_pool")
@pytest.mark.parametrize("case", GAP_CASES)
def test_global_avg_pool_values(student, reference, rng, mistakes, case):
    x = rng.normal(size=case["shape"]).astype(case["dtype"])
    expected = reference.global_avg_pool(float64_copy(x))
    desc = describe(x=x)

    def check(out):
        assert_matches(out, expected, what="global_avg_pool output", case=desc,
                       mistakes=lambda: mistakes.global_avg_pool(x), **tolerance(x))

    checked_call(student, "global_avg_pool", x, check=check, case=desc, names=("x",))
