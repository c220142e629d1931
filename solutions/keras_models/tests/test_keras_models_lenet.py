"""Hidden tests: build_lenet5 — structure, parameters, submitted weights, retraining."""
import numpy as np
import pytest
from keras_models_support import (
    ACTIVATION_LAYERS,
    DROPOUT_LAYERS,
    LENET_PARAMS,
    LENET_SLIPS,
    LENET_TYPES,
    accuracy_message,
    arrow,
    check_output_shape,
    check_softmax_rows,
    final_activation,
    flat_layers,
    frozen_report,
    kind,
    lenet_expected_per_layer,
    pair,
    retrained_accuracy,
    student_model,
    submitted_weights_accuracy,
)

from grader.course import training
from grader.course.datasets import load_mnist

WEIGHTS = "lenet5.weights.h5"

SHAPE_CASES = [
    pytest.param((), (None, 10), id="default"),
    pytest.param(((32, 32, 3), 5), (None, 5), id="rgb32_5classes"),
]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("build_lenet5")
@pytest.mark.parametrize("args,expected", SHAPE_CASES)
def test_lenet_output_shape(student, args, expected):
    check_output_shape(student, "build_lenet5", args, expected)


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("build_lenet5")
def test_lenet_softmax(student, rng):
    check_softmax_rows(student, "build_lenet5", rng.random((4, 28, 28, 1), dtype=np.float32))


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_lenet5")
def test_lenet_layers(student):
    model = student_model(student, "build_lenet5")
    layers_ = flat_layers(model)
    extra = [f"{l.name} ({kind(l)})" for l in layers_
             if kind(l) not in set(LENET_TYPES) | set(ACTIVATION_LAYERS) | set(DROPOUT_LAYERS)]
    core = [l for l in layers_ if kind(l) in set(LENET_TYPES)]
    assert not extra, f"LeNet-5 has no layers of these kinds: {', '.join(extra)}"
    assert [kind(l) for l in core] == LENET_TYPES, (
        f"LeNet-5's layers are {arrow(LENET_TYPES)}; yours are {arrow([kind(l) for l in core])}")
    conv1, pool1, conv2, pool2, _, d1, d2, d3 = core
    problems = []
    for conv, filters, padding in ((conv1, 6, "same"), (conv2, 16, "valid")):
        which = "first" if conv is conv1 else "second"
        if conv.filters != filters or pair(conv.kernel_size) != (5, 5):
            problems.append(f"the {which} convolution has {conv.filters} filters of {pair(conv.kernel_size)}; "
                            f"expected {filters} filters of (5, 5)")
        if conv.padding != padding:
            problems.append(f"the {which} convolution uses padding='{conv.padding}'; expected '{padding}'")
        if pair(conv.strides) != (1, 1) or pair(conv.dilation_rate) != (1, 1):
            problems.append(f"the {which} convolution must have strides 1 and no dilation")
    for pool in (pool1, pool2):
        strides = pair(pool.strides) if pool.strides is not None else pair(pool.pool_size)
        if pair(pool.pool_size) != (2, 2) or strides != (2, 2):
            problems.append(f"{pool.name} pools {pair(pool.pool_size)} with strides {strides}; expected 2×2, stride 2")
    for dense, units in ((d1, 120), (d2, 84)):
        if dense.units != units:
            problems.append(f"the hidden Dense layers have {d1.units} and {d2.units} units; expected 120 and 84")
            break
    if final_activation(layers_) != "softmax":
        problems.append(f"the output activation is {final_activation(layers_)}; expected softmax")
    assert not problems, "; ".join(problems)


@pytest.mark.points(2)
@pytest.mark.category("params")
@pytest.mark.calls("build_lenet5")
def test_lenet_param_count(student):
    model = student_model(student, "build_lenet5")
    count = model.count_params()
    if count == LENET_PARAMS:
        return
    message = f"build_lenet5() has {count:,} parameters; LeNet-5 has {LENET_PARAMS:,}. "
    if count in LENET_SLIPS:
        message += f"This count means {LENET_SLIPS[count]}."
    else:
        core = [l for l in flat_layers(model) if l.weights]
        expected = [p for p in lenet_expected_per_layer() if p]
        if len(core) == len(expected):
            for layer, want in zip(core, expected):
                if layer.count_params() != want:
                    message += (f"The first layer that differs is {layer.name} ({kind(layer)}) with "
                                f"{layer.count_params():,} parameters instead of {want:,}.")
                    break
        else:
            message += (f"It has {len(core)} layers with parameters; LeNet-5 has {len(expected)} "
                        "(2 Conv2D, 3 Dense).")
    raise AssertionError(message)


@pytest.mark.points(4)
@pytest.mark.category("accuracy")
@pytest.mark.calls("build_lenet5", "preprocess_mnist")
def test_lenet_weights_accuracy(student, config, data_dir, metrics):
    threshold = float(config.thresholds["lenet_accuracy"])
    mnist = load_mnist(data_dir)
    accuracy, n = submitted_weights_accuracy(student, metrics, build="build_lenet5", preprocess="preprocess_mnist",
                                             weights=WEIGHTS, dataset=mnist, shape=(len(mnist.x_test), 28, 28, 1),
                                             key="lenet_accuracy")
    assert accuracy >= threshold, accuracy_message("LeNet-5", accuracy, n, "MNIST", threshold,
                                                   "Train longer (e.g. 5 epochs with Adam).", "preprocess_mnist")


@pytest.mark.points(3)
@pytest.mark.category("accuracy")
@pytest.mark.calls("build_lenet5")
def test_lenet_retrain_accuracy(student, config, data_dir, metrics):
    threshold = float(config.thresholds["lenet_retrain_accuracy"])
    recipe = training.LENET_RECIPE
    model, result = retrained_accuracy(student, metrics, build="build_lenet5", dataset=load_mnist(data_dir), recipe=recipe,
                                       key="lenet_retrain_accuracy", what="LeNet-5")
    assert result.accuracy >= threshold, (
        f"trained from scratch by the grader (Adam, batch {recipe.batch_size}, {recipe.epochs} epoch of MNIST "
        f"scaled to [0, 1]), your LeNet-5 architecture reaches {result.accuracy:.4f}; at least {threshold:.2f} "
        f"is required, whatever weights you submitted.{frozen_report(model)} Use ReLU or tanh activations "
        "and a softmax output.")
