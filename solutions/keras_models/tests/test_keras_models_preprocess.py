"""Hidden tests: preprocess_mnist and preprocess_cifar (dtype, shape, range, input left alone)."""
import numpy as np
import pytest


def _images(rng, shape):
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    x.reshape(-1)[:2] = (0, 255)  # both ends of the pixel range are present
    return x


CASES = [pytest.param(5, id="batch5"), pytest.param(1, id="batch1")]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("preprocess_mnist")
@pytest.mark.parametrize("n", CASES)
def test_preprocess_mnist_shape(student, rng, n):
    x = _images(rng, (n, 28, 28))
    out = student.preprocess_mnist(x)
    assert isinstance(out, np.ndarray), f"preprocess_mnist must return a NumPy array, got {type(out).__name__}"
    assert out.shape == (n, 28, 28, 1), (
        f"preprocess_mnist on uint8 images of shape {x.shape} returned shape {out.shape}; expected "
        f"(N, 28, 28, 1): Conv2D needs a channel axis (x[..., np.newaxis])")
    assert out.dtype == np.float32, f"preprocess_mnist returned dtype {out.dtype}; expected float32"


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("preprocess_mnist")
def test_preprocess_mnist_range(student, rng):
    x = _images(rng, (6, 28, 28))
    before = x.copy()
    out, (x_after,), _ = student.call_with_inputs("preprocess_mnist", x)
    assert np.array_equal(x_after, before), "preprocess_mnist modified its input array; work on a copy"
    assert np.size(out) == x.size, f"preprocess_mnist returned {np.size(out)} values for {x.size} pixels"
    out = np.asarray(out, dtype=np.float64).reshape(x.shape)
    assert np.all(np.isfinite(out)), "preprocess_mnist returned values that are not finite"
    lo, hi = out.min(), out.max()
    assert lo >= 0.0 and hi <= 1.0, (
        f"preprocess_mnist returned values in [{lo:.4g}, {hi:.4g}]; they must lie in [0, 1] (divide by 255)")
    flat_x, flat = x.reshape(-1).astype(np.int64), out.reshape(-1)
    assert abs(flat[flat_x == 0].max()) < 1e-6 and abs(flat[flat_x == 255].min() - 1.0) < 1e-6, (
        "preprocess_mnist must map pixel 0 to 0.0 and pixel 255 to 1.0 (x / 255)")
    order = np.argsort(flat_x, kind="stable")
    assert np.all(np.diff(flat[order]) >= -1e-7), "brighter pixels must not get smaller values"


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("preprocess_cifar")
@pytest.mark.parametrize("n", CASES)
def test_preprocess_cifar_shape(student, rng, n):
    x = _images(rng, (n, 32, 32, 3))
    out = student.preprocess_cifar(x)
    assert isinstance(out, np.ndarray), f"preprocess_cifar must return a NumPy array, got {type(out).__name__}"
    assert out.shape == (n, 32, 32, 3), (
        f"preprocess_cifar on uint8 images of shape {x.shape} returned shape {out.shape}; expected the same shape")
    assert out.dtype == np.float32, f"preprocess_cifar returned dtype {out.dtype}; expected float32"


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("preprocess_cifar")
def test_preprocess_cifar_values(student, rng):
    x = _images(rng, (4, 32, 32, 3))
    before = x.copy()
    out, (x_after,), _ = student.call_with_inputs("preprocess_cifar", x)
    assert np.array_equal(x_after, before), "preprocess_cifar modified its input array; work on a copy"
    out = np.asarray(out, dtype=np.float64)
    assert out.shape == x.shape, f"preprocess_cifar returned shape {out.shape} for input {x.shape}"
    assert np.all(np.isfinite(out)), "preprocess_cifar returned values that are not finite"
    for c in range(3):
        assert np.ptp(out[..., c]) > 0, (
            f"preprocess_cifar: channel {c} became constant, so the image content is lost")
