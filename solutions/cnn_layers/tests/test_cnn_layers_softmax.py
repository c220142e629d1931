"""Hidden tests: softmax, cross_entropy_loss."""
import numpy as np
import pytest
from conftest import float64_copy

from grader.testing.checks import (
    assert_matches,
    assert_scalar_matches,
    assert_shape,
    assert_tuple,
    checked_call,
    describe,
    numeric_gradient,
    tolerance,
)

# --- softmax -------------------------------------------------------------------------------------------

SOFTMAX_CASES = [
    pytest.param(dict(shape=(2, 5), offset=0.0, kind="normal", dtype="float64"), id="nonsquare_2x5"),
    pytest.param(dict(shape=(7, 3), offset=0.0, kind="normal", dtype="float64"), id="tall_7x3"),
    pytest.param(dict(shape=(3, 4), offset=1000.0, kind="normal", dtype="float64"), id="around_plus_1000"),
    pytest.param(dict(shape=(4, 3), offset=-1000.0, kind="normal", dtype="float64"), id="around_minus_1000"),
    pytest.param(dict(shape=(3, 5), offset=0.0, kind="spread", dtype="float64"), id="spread_pm1000"),
    pytest.param(dict(shape=(2, 3, 4), offset=0.0, kind="normal", dtype="float64"), id="rank3_last_axis"),
    pytest.param(dict(shape=(3, 6), offset=0.0, kind="normal", dtype="float32"), id="float32"),
]


def logits_input(rng, case):
    if case["kind"] == "spread":  # every row has one logit near +1000 and one near -1000
        z = rng.uniform(-1000.0, 1000.0, size=case["shape"])
        rows = np.arange(z.shape[0])
        cols = np.array([rng.permutation(z.shape[1])[:2] for _ in rows])
        z[rows, cols[:, 0]] = rng.uniform(950.0, 1000.0, size=len(rows))
        z[rows, cols[:, 1]] = rng.uniform(-1000.0, -950.0, size=len(rows))
    else:
        z = case["offset"] + 3.0 * rng.normal(size=case["shape"])
    return z.astype(case["dtype"])


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("softmax")
@pytest.mark.parametrize("case", [SOFTMAX_CASES[i] for i in (0, 5, 6)])
def test_softmax_shape(student, rng, case):
    z = logits_input(rng, case)
    assert_shape(student.softmax(z), z.shape, what="softmax output", case=describe(z=z))


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("softmax")
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_softmax_values(student, reference, rng, mistakes, case):
    z = logits_input(rng, case)
    expected = reference.softmax(float64_copy(z))
    desc = describe(z=z) + ("" if case["offset"] == 0 else f", logits around {case['offset']:+g}") + \
        (", logits spread over [-1000, 1000]" if case["kind"] == "spread" else "")

    def check(out):
        assert_matches(out, expected, what="softmax output", case=desc, mistakes=lambda: mistakes.softmax(z),
                       **tolerance(z))

    checked_call(student, "softmax", z, check=check, case=desc, names=("z",))


# --- cross_entropy_loss ------------------------------------------------------------------------------------

CE_CASES = [
    pytest.param(dict(shape=(4, 5), large=False, dtype="float64"), id="basic_4x5"),
    pytest.param(dict(shape=(3, 2), large=False, dtype="float64"), id="two_classes_3x2"),
    pytest.param(dict(shape=(2, 10), large=False, dtype="float64"), id="many_classes_2x10"),
    pytest.param(dict(shape=(3, 4), large=True, dtype="float64"), id="logits_around_pm1000"),
    pytest.param(dict(shape=(5, 3), large=False, dtype="float32"), id="float32"),
]


def ce_inputs(rng, case):
    n, k = case["shape"]
    z = 2.0 * rng.normal(size=(n, k))
    if case["large"]:
        z += np.where(np.arange(n) % 2 == 0, 1000.0, -1000.0)[:, None]
    y = rng.integers(0, k, size=n)
    y[0] = int(np.argmin(z[0]))  # at least one confidently wrong prediction
    return z.astype(case["dtype"]), y


def ce_desc(z, y, case):
    return describe(logits=z, y=y) + (", logits around +-1000" if case["large"] else "")


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("cross_entropy_loss")
@pytest.mark.parametrize("case", [CE_CASES[i] for i in (0, 1, 4)])
def test_cross_entropy_loss_shape(student, rng, case):
    z, y = ce_inputs(rng, case)
    desc = ce_desc(z, y, case)
    loss, dlogits = assert_tuple(student.cross_entropy_loss(z, y), ("loss", "dlogits"), fn="cross_entropy_loss",
                                 case=desc)
    assert np.ndim(loss) == 0 and not isinstance(loss, (list, tuple, str)), \
        f"loss should be a scalar (a float), got {type(loss).__name__} of shape {np.shape(loss)}, for {desc}."
    assert_shape(dlogits, z.shape, what="dlogits", case=desc)


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("cross_entropy_loss")
@pytest.mark.parametrize("case", CE_CASES)
def test_cross_entropy_loss_value(student, reference, rng, mistakes, case):
    z, y = ce_inputs(rng, case)
    expected, _ = reference.cross_entropy_loss(float64_copy(z), y)
    desc = ce_desc(z, y, case)

    def check(result):
        loss, _ = assert_tuple(result, ("loss", "dlogits"), fn="cross_entropy_loss", case=desc)
        assert_scalar_matches(loss, expected, what="loss", case=desc,
                              mistakes=lambda: mistakes.cross_entropy_loss(z, y)["loss"], **tolerance(z))

    checked_call(student, "cross_entropy_loss", z, y, check=check, case=desc, names=("logits", "y"))


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("cross_entropy_loss")
@pytest.mark.parametrize("case", CE_CASES)
def test_cross_entropy_loss_gradient(student, reference, rng, mistakes, case):
    z, y = ce_inputs(rng, case)
    _, expected = reference.cross_entropy_loss(float64_copy(z), y)
    desc = ce_desc(z, y, case)

    def check(result):
        _, dlogits = assert_tuple(result, ("loss", "dlogits"), fn="cross_entropy_loss", case=desc)
        assert_matches(dlogits, expected, what="dlogits", case=desc,
                       mistakes=lambda: mistakes.cross_entropy_loss(z, y)["dlogits"], **tolerance(z))

    checked_call(student, "cross_entropy_loss", z, y, check=check, case=desc, names=("logits", "y"))


NUMERIC_CE_CASES = [
    pytest.param(dict(shape=(3, 4)), id="3x4"),
    pytest.param(dict(shape=(2, 2)), id="two_classes"),
]


@pytest.mark.points(1)
@pytest.mark.category("gradient")
@pytest.mark.calls("cross_entropy_loss")
@pytest.mark.parametrize("case", NUMERIC_CE_CASES)
@pytest.mark.hidden
def test_cross_entropy_loss_numeric(student, reference, rng, mistakes, case):
    """dlogits agrees with central differences of the loss (the reference's: a student process keeps state)."""
    n, k = case["shape"]
    z = rng.normal(size=(n, k))
    y = rng.integers(0, k, size=n)
    desc = describe(logits=z, y=y)
    _, dlogits = assert_tuple(student.cross_entropy_loss(z, y), ("loss", "dlogits"), fn="cross_entropy_loss",
                              case=desc)

    def loss(v):
        return float(reference.cross_entropy_loss(v, y)[0])

    numeric = numeric_gradient(loss, z, eps=1e-5)
    assert_matches(dlogits, numeric, what="dlogits (compared with the numeric gradient of the loss)", case=desc,
                   mistakes=lambda: mistakes.cross_entropy_loss(z, y)["dlogits"], rtol=1e-4, atol=1e-7)
