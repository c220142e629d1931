"""Comparison helpers for hidden tests: compare a student's result with the reference and explain
the difference in a message the student can act on.

Everything here is generic (no assignment-specific code). The messages give the case description,
shapes and a relative error rounded to one significant digit, and never the expected values: an
absolute error would give the expected value away (a student returning 0 reads it back).

A *mistake* is a known wrong answer: the result a typical bug would give, computed by the test
from the reference. ``mistakes`` maps a name to ``(variant, hint)`` where ``variant`` is

- an array (or scalar): the student's result matches it  -> the hint is shown;
- a callable ``variant(actual) -> bool``: a predicate on the student's result;
- None: not applicable to this case (skipped).

``mistakes`` may also be a callable returning that dict, so it is only computed on failure.
Mistakes are tried in order; the first match wins. A variant equal to the expected result
(e.g. a flipped 1x1 kernel) is skipped, since it cannot be told apart. A mistake is named only when
its variant reproduces the student's result, values as well as shape; a predicate must check values
too, unless its hint only restates the contract the result breaks (e.g. "dw must have the shape of w").
"""
import numbers
from typing import NoReturn

import numpy as np

__all__ = [
    "Mismatch",
    "assert_matches",
    "assert_scalar_matches",
    "assert_shape",
    "assert_tuple",
    "assert_unchanged",
    "checked_call",
    "describe",
    "max_abs_error",
    "numeric_gradient",
    "relative_error",
    "tolerance",
]


def describe(**params):
    """Describe a test case for a message: arrays by shape (and dtype if not float64), others by repr."""
    parts = []
    for name, value in params.items():
        if isinstance(value, np.ndarray):
            dtype = "" if value.dtype == np.float64 else f" {value.dtype}"
            parts.append(f"{name} {value.shape}{dtype}")
        else:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def tolerance(*arrays):
    """rtol/atol for comparing a result computed from these inputs with a float64 reference."""
    low = any(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float16) for a in arrays)
    return dict(rtol=1e-4, atol=1e-5) if low else dict(rtol=1e-6, atol=1e-9)


def max_abs_error(actual, expected):
    """Max abs difference over the positions where both are finite (nan if there are none)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(e)
    return float(np.max(np.abs(a[ok] - e[ok]))) if ok.any() else float("nan")


def relative_error(actual, expected) -> str:
    """How far actual is from expected, relative to expected's largest magnitude, for a message.

    A percentage with one significant digit ("about 30%", "about 0.002%"): close enough to act on,
    too coarse to recover the expected value from the student's own result."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(e)
    if not ok.any():
        return "not comparable"
    scale = float(np.max(np.abs(e[ok])))
    err = float(np.max(np.abs(a[ok] - e[ok])))
    if err == 0.0:
        return "0%"
    if scale == 0.0:
        return "nonzero where 0 was expected"
    percent = 100 * err / scale
    return f"about {float(f'{percent:.1g}'):g}%" if percent < 1000 else "more than 10 times the expected magnitude"


def _close(a, b, rtol, atol):
    try:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _which_mistake(actual, expected, mistakes, rtol, atol):
    """The hint of the first mistake the actual result matches, or None."""
    if callable(mistakes):
        mistakes = mistakes()
    for variant, hint in (mistakes or {}).values():
        if variant is None:
            continue
        if callable(variant):
            try:
                if variant(actual):
                    return hint
            except Exception:
                pass
            continue
        if expected is not None and _close(variant, expected, rtol, atol):
            continue  # indistinguishable from the right answer on this case
        if _close(actual, variant, rtol, atol):
            return hint
    return None


def _predicates(mistakes):
    """Only the callable mistakes (predicates on the result)."""
    if callable(mistakes):
        mistakes = mistakes()
    return {k: v for k, v in (mistakes or {}).items() if callable(v[0])}


class Mismatch(AssertionError):
    """A failed check: what is wrong (message) and, apart from it, the likely mistake (diagnosis)."""

    def __init__(self, message: str, diagnosis: str = ""):
        super().__init__(message)
        self.message, self.diagnosis = message, diagnosis


def _fail(message: str, hint: str | None) -> NoReturn:
    raise Mismatch(message, hint or "")


def _type_name(value):
    return type(value).__name__


def assert_matches(actual, expected, *, what, case, mistakes=None, rtol=1e-6, atol=1e-9):
    """Check that ``actual`` (a student's array) matches ``expected`` (the reference).

    Checks, in order: it is an ndarray, numeric, of the right shape, finite where expected is
    finite, and close to expected (|a - e| <= atol + rtol * |e|). On failure the message names
    the matching mistake, if any.
    """
    expected = np.asarray(expected)
    if not isinstance(actual, np.ndarray):
        if isinstance(actual, (list, tuple)):
            hint = "return a NumPy array (np.array(...)), not a Python list or tuple."
        else:
            hint = _which_mistake(actual, expected, _predicates(mistakes), rtol, atol)
        _fail(f"{what} should be a NumPy array, got {_type_name(actual)}, for {case}.", hint)
    if actual.dtype.kind not in "biuf":
        _fail(f"{what} should be a numeric array, got dtype {actual.dtype}, for {case}.", None)
    if actual.shape != expected.shape:
        hint = _which_mistake(actual, expected, mistakes, rtol, atol)
        _fail(f"{what} has shape {actual.shape} but should have shape {expected.shape}, for {case}.", hint)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    bad = ~np.isfinite(a) & np.isfinite(e)
    if bad.any():
        hint = _which_mistake(actual, expected, mistakes, rtol, atol)
        _fail(f"{what} contains NaN or inf ({int(bad.sum())} of {a.size} values), for {case}.",
              hint or "look for an overflow (np.exp of a large number) or a division by zero.")
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
        n_bad = int(np.sum(~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)))
        hint = _which_mistake(actual, expected, mistakes, rtol, atol)
        _fail(f"{what} has wrong values for {case}: {n_bad} of {a.size} values differ, "
              f"the largest by {relative_error(a, e)} of the largest expected magnitude.", hint)


def assert_shape(actual, shape, *, what, case, mistakes=None):
    """Check that ``actual`` is an ndarray of the given shape (values are not checked).

    On failure, a mistake is named only if its variant reproduces the result (shape and values)."""
    shape = tuple(shape)
    if not isinstance(actual, np.ndarray):
        if isinstance(actual, (list, tuple)):
            hint = "return a NumPy array (np.array(...)), not a Python list or tuple."
        else:
            hint = _which_mistake(actual, None, _predicates(mistakes), 0, 0)
        _fail(f"{what} should be a NumPy array, got {_type_name(actual)}, for {case}.", hint)
    if actual.shape != shape:
        hint = _which_mistake(actual, None, mistakes, 1e-4, 1e-6)
        _fail(f"{what} has shape {actual.shape} but should have shape {shape}, for {case}.", hint)


def assert_tuple(result, names, *, fn, case):
    """Check that ``fn`` returned a tuple/list with one item per name, e.g. ("dx", "dw", "db")."""
    names = tuple(names)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{_type_name(result)} of length {len(result)}" if isinstance(result, (tuple, list)) \
            else _type_name(result)
        _fail(f"{fn} should return a tuple ({', '.join(names)}), got {got}, for {case}.", None)
    return tuple(result)


def assert_scalar_matches(actual, expected, *, what, case, integer=False, mistakes=None, rtol=1e-6, atol=1e-9):
    """Check a scalar result: an int (``integer=True``, exact) or a real number (close)."""
    if integer:
        if isinstance(actual, (bool, np.bool_)) or not isinstance(actual, (numbers.Integral, np.integer)):
            hint = None
            if isinstance(actual, (float, np.floating)):
                hint = "use integer division (//) or int(...): sizes and counts are ints."
            _fail(f"{what} should be an int, got {_type_name(actual)}, for {case}.", hint)
        if int(actual) != int(expected):
            hint = _which_mistake(int(actual), int(expected), mistakes, 0, 0)
            _fail(f"{what} is wrong for {case}.", hint)
        return
    if isinstance(actual, np.ndarray) and actual.ndim == 0:
        actual = actual[()]
    if isinstance(actual, (bool, np.bool_)) or not isinstance(actual, (numbers.Real, np.integer, np.floating)):
        shape = f" of shape {actual.shape}" if isinstance(actual, np.ndarray) else ""
        _fail(f"{what} should be a number (a Python or NumPy scalar), got {_type_name(actual)}{shape}, "
              f"for {case}.", None)
    try:
        a, e = float(actual), float(expected)
    except OverflowError:
        _fail(f"{what} is too large to be a floating-point number, for {case}.", None)
    if not np.isfinite(a) and np.isfinite(e):
        hint = _which_mistake(a, e, mistakes, rtol, atol)
        _fail(f"{what} is {a} for {case}.", hint or "look for an overflow (np.exp of a large number) "
              "or a log of zero.")
    if not np.isclose(a, e, rtol=rtol, atol=atol):
        hint = _which_mistake(a, e, mistakes, rtol, atol)
        _fail(f"{what} is wrong for {case}: off by {relative_error(a, e)}.", hint)


def _changed(before, after):
    """Number of changed values between an argument before and after a call (0 if unchanged)."""
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or after.shape != before.shape:
            return max(before.size, 1)
        if before.dtype.kind in "fc":
            same = (before == after) | (np.isnan(before) & np.isnan(after))
        else:
            same = before == after
        return int(np.size(same) - np.count_nonzero(same))
    if isinstance(before, (list, tuple)):
        if not isinstance(after, (list, tuple)) or len(after) != len(before):
            return 1
        return sum(_changed(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        if not isinstance(after, dict) or set(after) != set(before):
            return 1
        return sum(_changed(before[k], after[k]) for k in before)
    try:
        return 0 if before == after else 1
    except Exception:
        return 1


IN_PLACE_HINT = ("the input was modified in place. Work on a copy (x = x.copy()) or use out-of-place "
                 "operations (z = z - m instead of z -= m; dout * mask instead of dout[...] = 0).")


def assert_unchanged(args, kwargs, args_after, kwargs_after, *, fn, case, names=()):
    """Check that a call left its arguments unchanged (as returned by student.call_with_inputs)."""
    for i, (before, after) in enumerate(zip(args, args_after)):
        n = _changed(before, after)
        if n:
            name = names[i] if i < len(names) else f"#{i + 1}"
            _fail(f"{fn} changed its argument `{name}` ({n} values), for {case}.", IN_PLACE_HINT)
    for key, before in kwargs.items():
        n = _changed(before, kwargs_after.get(key))
        if n:
            _fail(f"{fn} changed its argument `{key}` ({n} values), for {case}.", IN_PLACE_HINT)


def checked_call(student, fn, *args, check, case, names=(), **kwargs):
    """Call ``fn`` through ``student.call_with_inputs``, run ``check(result)`` and check that the
    inputs came back unchanged. A modified input is reported first, since it often explains the
    wrong values too. Returns the result."""
    result, args_after, kwargs_after = student.call_with_inputs(fn, *args, **kwargs)
    try:
        check(result)
    except AssertionError as exc:
        try:
            assert_unchanged(args, kwargs, args_after, kwargs_after, fn=fn, case=case, names=names)
        except Mismatch as in_place:
            raise Mismatch(f"{in_place.message} (The result is also wrong: {exc})", in_place.diagnosis) from None
        raise
    assert_unchanged(args, kwargs, args_after, kwargs_after, fn=fn, case=case, names=names)
    return result


def numeric_gradient(f, x, eps=1e-6):
    """Central-difference gradient of a scalar function ``f`` at array ``x`` (float64, x's shape).

    ``f`` is called with perturbed float64 copies of ``x``; ``x`` itself is not modified.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + eps
        plus = float(f(x.copy()))
        x[idx] = orig - eps
        minus = float(f(x.copy()))
        x[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
