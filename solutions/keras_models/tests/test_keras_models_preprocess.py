"""Hidden tests: preprocess_mnist and preprocess_cifar (dtype, shape, range, input left alone).

The checks live in keras_models_support, so that the retraining test uses the student's preprocessing
exactly when it passes these tests."""
import pytest
from keras_models_support import (
    check_preprocess_cifar_values,
    check_preprocess_mnist_values,
    check_preprocess_shape,
    keras_imported,  # noqa: F401 (an autouse fixture)
)

CASES = [pytest.param(5, id="batch5"), pytest.param(1, id="batch1")]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("preprocess_mnist")
@pytest.mark.parametrize("n", CASES)
def test_preprocess_mnist_shape(student, rng, n):
    check_preprocess_shape(student, "preprocess_mnist", rng, n)


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("preprocess_mnist")
def test_preprocess_mnist_range(student, rng):
    check_preprocess_mnist_values(student, rng)


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("preprocess_cifar")
@pytest.mark.parametrize("n", CASES)
def test_preprocess_cifar_shape(student, rng, n):
    check_preprocess_shape(student, "preprocess_cifar", rng, n)


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("preprocess_cifar")
def test_preprocess_cifar_values(student, rng):
    check_preprocess_cifar_values(student, rng)
