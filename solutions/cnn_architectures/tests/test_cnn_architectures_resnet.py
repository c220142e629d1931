"""Hidden tests: build_resnet and build_plain (output shapes, structure, submitted weights, retraining).

build_resnet is built from the student's residual_block, so its tests also name residual_block."""
import time

import numpy as np
import pytest
from cnn_architectures_support import (
    RECIPE,
    RECIPE_TEXT,
    frozen_report,
    keras_imported,  # noqa: F401 (an autouse fixture)
    kind,
    layers_of,
    pair,
    producer,
    retrained,
    student_model,
)

WEIGHTS = "resnet.weights.h5"
OTHER_INPUT = ((48, 48, 3), 5)
BUILDS = [pytest.param("build_resnet", id="resnet", marks=pytest.mark.calls("build_resnet", "residual_block")),
          pytest.param("build_plain", id="plain", marks=pytest.mark.calls("build_plain"))]


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("args,expected", [pytest.param((), (None, 10), id="default"),
                                           pytest.param(OTHER_INPUT, (None, 5), id="48x48_5classes")])
def test_output_shape(student, build, args, expected):
    model = student_model(student, build, *args)
    shape = tuple(model.output.shape)
    assert shape == expected, (f"{build}({', '.join(map(repr, args))}) has output shape {shape}; expected {expected}. "
                               "Use the input_shape and num_classes arguments")


def _convs(model, size: int) -> list:
    return [layer for layer in layers_of(model) if kind(layer) == "Conv2D" and pair(layer.kernel_size) == (size, size)]


def _check_trunk(model, build: str, blocks: int) -> None:
    """Stem, three stages of 16, 32, 64 filters halving the size twice, GAP, softmax Dense."""
    convs = _convs(model, 3)
    expected = [16] * (1 + 2 * blocks) + [32] * (2 * blocks) + [64] * (2 * blocks)
    found = [c.filters for c in convs]
    assert found == expected, (f"{build}(blocks_per_stage={blocks}) has 3×3 convolutions with {found} filters; "
                               f"expected the stem (16) then {2 * blocks} per stage with 16, 32, 64 filters")
    strided = [i for i, c in enumerate(convs) if pair(c.strides) != (1, 1)]
    assert strided == [1 + 2 * blocks, 1 + 4 * blocks] and all(pair(convs[i].strides) == (2, 2) for i in strided), (
        f"{build}: the first block of the second and third stages has stride 2, every other convolution stride 1")
    assert tuple(convs[-1].output.shape)[1:3] == tuple(s // 4 for s in model.input.shape[1:3]), (
        f"{build}: the last stage must work on maps a quarter of the input's size (32×32 → 8×8)")
    head = producer(model.output)
    assert kind(head) == "Dense" and head.get_config().get("activation") == "softmax", (
        f"{build}: the output layer is Dense(num_classes, activation='softmax')")
    before = producer(head.input)
    while kind(before) == "Dropout":
        before = producer(before.input)
    assert kind(before) == "GlobalAveragePooling2D", (
        f"{build}: the Dense output layer comes right after GlobalAveragePooling2D (a Dropout between them is fine)")


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_resnet", "residual_block")
@pytest.mark.parametrize("blocks", [pytest.param(1, id="resnet8"), pytest.param(3, id="resnet20")])
def test_resnet_structure(student, blocks):
    model = student_model(student, "build_resnet", *(() if blocks == 1 else ((32, 32, 3), 10, blocks)))
    _check_trunk(model, "build_resnet", blocks)
    adds = [layer for layer in layers_of(model) if kind(layer) == "Add"]
    assert len(adds) == 3 * blocks, (f"build_resnet(blocks_per_stage={blocks}) has {len(adds)} Add layers; "
                                     f"expected one per residual block, {3 * blocks}")
    projections = _convs(model, 1)
    assert len(projections) == 2, (f"build_resnet(blocks_per_stage={blocks}) has {len(projections)} 1×1 "
                                   "convolutions; expected 2, the projections where a stage changes the shape")


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_plain")
def test_plain_structure(student):
    model = student_model(student, "build_plain")
    merges = [layer.name for layer in layers_of(model) if kind(layer) in ("Add", "Concatenate", "Average")]
    assert not merges, f"the plain network has no shortcuts, but build_plain has {', '.join(merges)}"
    assert not _convs(model, 1), "the plain network has no 1×1 (projection) convolutions"
    _check_trunk(model, "build_plain", 1)


@pytest.mark.points(4)
@pytest.mark.category("accuracy")
@pytest.mark.calls("build_resnet", "residual_block")
def test_resnet_weights_accuracy(student, config, data_dir, metrics):
    from grader.course import training
    from grader.course.datasets import load_cifar10
    threshold = float(config.thresholds["resnet_accuracy"])
    path = student.files / WEIGHTS
    assert path.is_file(), (f"{WEIGHTS} is missing from your submission: after training, save it beside the "
                            f"notebook with model.save_weights('{WEIGHTS}') and submit it with the notebook")
    model = student_model(student, "build_resnet")
    data = load_cifar10(data_dir)
    x = data.x_test.astype(np.float32) / np.float32(255.0)
    began = time.monotonic()
    try:
        accuracy = training.evaluate_weights(model, path, x, data.y_test)
    except Exception as exc:
        raise AssertionError(f"{WEIGHTS} does not fit the model build_resnet() builds ({type(exc).__name__}: "
                             f"{str(exc).strip()[:240]}). Save the weights of a model built by your current "
                             "build_resnet, after training it") from None
    metrics["train_eval_seconds"] = round(time.monotonic() - began, 3)
    metrics["resnet_accuracy"] = round(accuracy, 4)
    advice = ("An accuracy near 0.10 (chance) means the weights are untrained (saved before training?) or were "
              "trained on inputs not scaled to [0, 1]." if accuracy < 0.2 else
              "Train longer, with data augmentation.")
    assert accuracy >= threshold, (f"build_resnet() with your weights reaches {accuracy:.4f} on the "
                                   f"{len(x):,} CIFAR-10 test images (inputs x / 255); at least {threshold:.2f} is "
                                   f"required. {advice}")


@pytest.mark.points(3)
@pytest.mark.category("accuracy")
@pytest.mark.parametrize("build", BUILDS)
def test_retrain_accuracy(student, config, data_dir, metrics, build):
    prefix = build.removeprefix("build_")
    threshold = float(config.thresholds[f"{prefix}_retrain_accuracy"])
    model, result = retrained(student, config, data_dir, metrics, build, prefix)
    assert result.accuracy >= threshold, (
        f"trained from scratch by the grader ({RECIPE_TEXT}), your {build}() architecture reaches "
        f"{result.accuracy:.4f} on {RECIPE.test_subset:,} test images; at least {threshold:.2f} is required, "
        f"whatever weights you submitted (chance is 0.10).{frozen_report(model)}")
