"""keras_models' structure tests and retraining messages on the ways students really write the models.

Cheap: the models are built in this process and handed to the hidden tests through a stand-in for the
`student` fixture; nothing is trained. (The whole path, sandbox and retraining included, is proved by the
variants of solutions/keras_models/variants.toml in tests/test_assignments.py.)"""
from __future__ import annotations

import sys
import warnings
from itertools import count
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from grader.config import load_assignment  # noqa: E402

sys.path.insert(0, str(load_assignment("keras_models").tests_dir))
with warnings.catch_warnings():  # the grader's plugin registers the hidden tests' markers, not this suite
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    import keras_models_support as support
    import test_keras_models_lenet as lenet_tests
    import test_keras_models_vgg as vgg_tests

_submissions = count()


class Student:
    """The part of the `student` fixture the structure tests use: models built here, by `build`."""

    def __init__(self, build):
        self.files = Path(f"/nonexistent/submission-{next(_submissions)}")
        self.build = build

    def model(self, name, *args):
        return self.build(*args)


def lenet(first=("same",), activation="relu", pool=layers.MaxPooling2D, sequential=False, out="softmax",
          trainable=True, rescale=None, input_shape=(28, 28, 1), num_classes=10):
    """A LeNet-5; first is ("same",), ("valid",) or ("pad", p) for ZeroPadding2D(p) and a 'valid' convolution."""
    stack = [keras.Input(shape=input_shape)]
    if rescale:
        stack.append(layers.Rescaling(rescale))
    if first[0] == "pad":
        stack += [layers.ZeroPadding2D(first[1]), layers.Conv2D(6, 5, padding="valid", activation=activation)]
    else:
        stack.append(layers.Conv2D(6, 5, padding=first[0], activation=activation))
    stack += [pool(2), layers.Conv2D(16, 5, activation=activation), pool(2), layers.Flatten(),
              layers.Dense(120, activation=activation), layers.Dense(84, activation=activation),
              layers.Dense(num_classes, activation=out)]
    if sequential:
        model = keras.Sequential(stack)
    else:
        x = stack[0]
        for layer in stack[1:]:
            x = layer(x)
        model = keras.Model(stack[0], x)
    model.trainable = trainable
    return model


def vgg(zero_padding=False, input_shape=(32, 32, 3), num_classes=10):
    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 128):
        for _ in range(2):
            if zero_padding:
                x = layers.ZeroPadding2D(1)(x)
            x = layers.Conv2D(filters, 3, padding="valid" if zero_padding else "same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


@pytest.mark.parametrize("variant", [
    dict(),
    dict(activation="tanh", pool=layers.AveragePooling2D, sequential=True),  # the 1998 paper
    dict(first=("pad", 2)),                                                  # ZeroPadding2D(2) + 'valid'
    dict(first=("pad", 2), activation="tanh", pool=layers.AveragePooling2D),
], ids=["modern", "tanh_avgpool", "zero_padding", "paper_layout"])
def test_equivalent_lenets_pass_the_structure_tests(variant):
    student = Student(lambda *args: lenet(**variant))
    lenet_tests.test_lenet_layers(student)
    lenet_tests.test_lenet_param_count(student)


@pytest.mark.parametrize("first, message", [
    (("valid",), "the first convolution uses padding='valid'; expected 'same' (or ZeroPadding2D(2) followed by "
                 "padding='valid')"),
    (("pad", 1), "LeNet-5 has no layers of these kinds: zero_padding2d"),  # ZeroPadding2D(1): not 'same'
])
def test_a_lenet_that_is_not_equivalent_fails_the_structure_test(first, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lenet_tests.test_lenet_layers(Student(lambda *args: lenet(first=first)))


@pytest.mark.parametrize("zero_padding", [False, True], ids=["same", "zero_padding"])
def test_equivalent_vggs_pass_the_structure_tests(zero_padding):
    student = Student(lambda *args: vgg(zero_padding=zero_padding))
    vgg_tests.test_vgg_conv_layers(student)
    vgg_tests.test_vgg_blocks(student)
    vgg_tests.test_vgg_param_bound(student)


def message(model, own_inputs=True) -> str:
    return support.retrain_failure_message(model, 0.5, 0.9, "the recipe", "LeNet-5", own_inputs)


def test_a_retraining_message_never_advises_what_the_model_already_does():
    for model in (lenet(), lenet(activation="tanh", pool=layers.AveragePooling2D)):
        text = message(model)
        assert "Nothing in your model looks unusual to the grader: the architecture did not learn enough" in text
        assert "ReLU" not in text and "tanh" not in text and "softmax" not in text


@pytest.mark.parametrize("model, own_inputs, finding", [
    (lambda: lenet(activation="sigmoid"), True, "The hidden layers use sigmoid only"),
    (lambda: lenet(activation=None), True, "The hidden layers use linear only"),
    (lambda: lenet(out="relu"), True, "The output activation is relu, not softmax"),
    (lambda: lenet(trainable=False), True, "trainable=False"),
    (lambda: lenet(rescale=1 / 255), False, "Your model rescales its input (Rescaling(0.003922)), but the grader "
                                            "trained it on inputs already in [0, 1]"),
])
def test_a_retraining_message_names_what_is_unusual(model, own_inputs, finding):
    text = message(model(), own_inputs)
    assert "What is unusual in your model: " in text and finding in text
    assert "Nothing in your model looks unusual" not in text


def test_a_rescaling_model_trained_on_its_own_inputs_is_not_called_unusual():
    assert "Nothing in your model looks unusual" in message(lenet(rescale=1 / 255), own_inputs=True)
