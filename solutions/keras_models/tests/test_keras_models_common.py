"""Hidden tests that LeNet-5 and the VGG share, one case per model in MODELS: output shape, softmax
output, submitted weights, retraining. Each model's own structure tests are in its own file."""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from keras_models_support import (
    accuracy_message,
    check_output_shape,
    check_softmax_rows,
    keras_imported,  # noqa: F401 (an autouse fixture)
    retrain_failure_message,
    retrained_accuracy,
    submitted_weights_accuracy,
)

from grader.course import training
from grader.course.datasets import Dataset, load_cifar10, load_mnist


@dataclass(frozen=True)
class ModelSpec:
    """One model the students build, and what its tests need to know about it."""
    id: str                     # test id, and prefix of its thresholds in assignment.toml
    name: str                   # as messages call it
    build: str                  # the student function that builds it
    preprocess: str             # the student function that prepares its dataset's images
    weights: str                # the trained weights submitted beside the notebook
    dataset: str                # as messages call it
    load: Callable[[str | None], Dataset]
    input_shape: tuple[int, ...]
    other_input: tuple[str, tuple[int, ...], int]  # (test id, input_shape, num_classes) of a non-default build
    recipe: training.Recipe     # how the grader retrains the architecture
    weights_advice: str         # for weights that score too low

    @property
    def accuracy_key(self) -> str:
        """Threshold and metric: accuracy of the submitted weights."""
        return f"{self.id}_accuracy"

    @property
    def retrain_key(self) -> str:
        """Threshold and metric: accuracy of the architecture retrained by the grader."""
        return f"{self.id}_retrain_accuracy"


LENET = ModelSpec(id="lenet", name="LeNet-5", build="build_lenet5", preprocess="preprocess_mnist",
                  weights="lenet5.weights.h5", dataset="MNIST", load=load_mnist, input_shape=(28, 28, 1),
                  other_input=("rgb32_5classes", (32, 32, 3), 5), recipe=training.LENET_RECIPE,
                  weights_advice="Train longer (e.g. 5 epochs with Adam).")
VGG = ModelSpec(id="vgg", name="VGG", build="build_vgg", preprocess="preprocess_cifar",
                weights="vgg.weights.h5", dataset="CIFAR-10", load=load_cifar10, input_shape=(32, 32, 3),
                other_input=("48x48_5classes", (48, 48, 3), 5), recipe=training.VGG_RECIPE,
                weights_advice="Train longer, with BatchNormalization or data augmentation.")
MODELS = (LENET, VGG)


def each_model(calls: Callable[[ModelSpec], tuple[str, ...]]) -> list:
    """One case per model, id'd by the model, marked with the student functions the test calls."""
    return [pytest.param(m, id=m.id, marks=pytest.mark.calls(*calls(m))) for m in MODELS]


def output_shape_cases() -> list:
    cases = []
    for m in MODELS:
        other_id, other_shape, other_classes = m.other_input
        for case_id, args, expected in (("default", (), (None, 10)),
                                        (other_id, (other_shape, other_classes), (None, other_classes))):
            cases.append(pytest.param(m, args, expected, id=f"{m.id}-{case_id}", marks=pytest.mark.calls(m.build)))
    return cases


def recipe_text(recipe: training.Recipe, dataset: str, inputs: str) -> str:
    """How the grader trains, for a student: 'Adam, batch 64, 2 epochs of 4,000 CIFAR-10 images preprocessed by
    your preprocess_cifar, tested on 2,000 test images'."""
    epochs = f"{recipe.epochs} epoch{'' if recipe.epochs == 1 else 's'}"
    images = f"{recipe.train_subset:,} {dataset} images" if recipe.train_subset else f"the {dataset} training images"
    tested = f"{recipe.test_subset:,} test images" if recipe.test_subset else f"the {dataset} test set"
    return f"Adam, batch {recipe.batch_size}, {epochs} of {images} {inputs}, tested on {tested}"


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.parametrize("model,args,expected", output_shape_cases())
def test_output_shape(student, model, args, expected):
    check_output_shape(student, model.build, args, expected)


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.parametrize("model", each_model(lambda m: (m.build,)))
def test_softmax_output(student, rng, model):
    check_softmax_rows(student, model.build, rng.random((4, *model.input_shape), dtype=np.float32))


@pytest.mark.points(4)
@pytest.mark.category("accuracy")
@pytest.mark.parametrize("model", each_model(lambda m: (m.build, m.preprocess)))
def test_weights_accuracy(student, config, data_dir, metrics, model):
    threshold = float(config.thresholds[model.accuracy_key])
    dataset = model.load(data_dir)
    accuracy, n = submitted_weights_accuracy(student, metrics, build=model.build, preprocess=model.preprocess,
                                             weights=model.weights, dataset=dataset,
                                             shape=(len(dataset.x_test), *model.input_shape), key=model.accuracy_key)
    assert accuracy >= threshold, accuracy_message(model.name, accuracy, n, model.dataset, threshold,
                                                   model.weights_advice, model.preprocess)


@pytest.mark.points(3)
@pytest.mark.category("accuracy")
@pytest.mark.parametrize("model", each_model(lambda m: (m.build, m.preprocess)))
def test_retrain_accuracy(student, config, data_dir, metrics, model):
    threshold = float(config.thresholds[model.retrain_key])
    trained, result, inputs, own = retrained_accuracy(
        student, metrics, build=model.build, preprocess=model.preprocess, shape=model.input_shape,
        dataset=model.load(data_dir), recipe=model.recipe, key=model.retrain_key, what=model.name,
        limits=config.retraining_limits, prefix=model.id)
    assert result.accuracy >= threshold, retrain_failure_message(
        trained, result.accuracy, threshold, recipe_text(model.recipe, model.dataset, inputs), model.name, own)
