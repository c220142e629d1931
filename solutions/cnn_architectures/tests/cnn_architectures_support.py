"""Helpers shared by the cnn_architectures hidden tests (grader process only).

- ``variant_table``: layer_table as the classic mistakes compute it, to name the mistake in a message;
- ``student_model`` / ``student_block``: the student's models and blocks, built once per submission;
- graph helpers for functional models (the layer that made a tensor, the layers between two tensors);
- the submitted weights and the retraining gate of the ResNet and its plain twin.

The grader may run pytest several times in one process and this module stays imported, so the
caches are keyed by the submission (student.files) and only the latest submission is kept.
"""
from __future__ import annotations

import time

import pytest

from grader.course import training
from grader.errors import StudentError


@pytest.fixture(scope="session", autouse=True)
def keras_imported():
    """Keras (TensorFlow: seconds) imported as the session starts, while the student process boots and imports it
    too: the two imports overlap instead of following each other. Every test module imports this fixture."""
    import keras  # noqa: F401


# ---------------------------------------------------------------------------------------------
# architecture arithmetic

COLUMNS = ("output_shape", "params", "receptive_field", "jump", "macs")

BIAS_FORGOTTEN = ("the biases are not counted: a convolution has k·k·C_in·F weights plus one bias per filter, "
                  "a dense layer D_in·U weights plus U biases (unless the spec says bias: False)")
FIELD_GROWS_BY_K = ("the receptive field grows by the kernel size; it grows by (k_eff − 1)·jump_in, the kernel's "
                    "extent counted in steps of the input's jump")
JUMP_NOT_MULTIPLIED = ("the jump is not multiplied by the stride: every stride s multiplies the distance between "
                       "neighbouring output units (j_out = j_in·s)")
SAME_AS_VALID = ("'same' padding is treated as no padding: with 'same' the output size is ceil(n / s), "
                 "with 'valid' floor((n − k_eff) / s) + 1")
DILATION_IGNORED = "the dilation is ignored: a dilated kernel spans k_eff = d·(k − 1) + 1 pixels"
MISTAKES = {"bias_forgotten": BIAS_FORGOTTEN, "conv_bias_forgotten": BIAS_FORGOTTEN, "field_grows_by_k": FIELD_GROWS_BY_K,
            "jump_not_multiplied": JUMP_NOT_MULTIPLIED, "same_as_valid": SAME_AS_VALID,
            "dilation_ignored": DILATION_IGNORED}


def variant_table(specs, input_shape, mistake: str = "") -> list[dict]:
    """layer_table computed correctly (mistake "") or with one of the MISTAKES."""
    no_bias = ("conv", "dense") if mistake == "bias_forgotten" else ("conv",) if mistake == "conv_bias_forgotten" else ()
    h, w, c = input_shape
    field, jump, features, rows = 1, 1, 0, []
    for spec in specs:
        kind = spec["type"]
        bias = spec.get("bias", True) and kind not in no_bias
        if kind in ("conv", "pool"):
            k = spec["kernel"]
            stride = spec.get("stride", 1 if kind == "conv" else k)
            k_eff = k if mistake == "dilation_ignored" else spec.get("dilation", 1) * (k - 1) + 1
            if spec.get("padding", "valid") == "same" and mistake != "same_as_valid":
                h, w = -(-h // stride), -(-w // stride)
            else:
                h, w = (h - k_eff) // stride + 1, (w - k_eff) // stride + 1
            field += k if mistake == "field_grows_by_k" else (k_eff - 1) * jump
            jump *= 1 if mistake == "jump_not_multiplied" else stride
            params = macs = 0
            if kind == "conv":
                f = spec["filters"]
                params, macs, c = k * k * c * f + (f if bias else 0), h * w * f * k * k * c, f
            rows.append({"output_shape": (h, w, c), "params": params, "receptive_field": field, "jump": jump,
                         "macs": macs})
        elif kind == "flatten":
            features = h * w * c
            rows.append({"output_shape": (features,), "params": 0, "receptive_field": None, "jump": None, "macs": 0})
        else:
            units = spec["units"]
            rows.append({"output_shape": (units,), "params": features * units + (units if bias else 0),
                         "receptive_field": None, "jump": None, "macs": features * units})
            features = units
    return rows


def _plain(value):
    """A row value as comparable plain Python: tuples of ints, ints, None."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if value is None:
        return None
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError):
        return ("not a number", repr(value)[:40])
    return as_int if as_int == value else ("not an integer", repr(value)[:40])


def table_column(rows, column: str, n_layers: int) -> list:
    """One column of a student's layer_table result, as plain values; AssertionError if malformed."""
    assert isinstance(rows, (list, tuple)), f"layer_table must return a list of rows, got {type(rows).__name__}"
    assert len(rows) == n_layers, f"layer_table returned {len(rows)} rows for {n_layers} layer specs (one row per layer)"
    for i, row in enumerate(rows):
        assert isinstance(row, dict) and column in row, (
            f"row {i} of layer_table is not a dictionary with the key {column!r} (the keys are {', '.join(COLUMNS)})")
    return [_plain(row[column]) for row in rows]


def describe_spec(spec: dict) -> str:
    """'conv 5×5, stride 2, 'same'' and the like, for a message."""
    parts = [spec["type"]]
    if "kernel" in spec:
        k = spec["kernel"]
        parts.append(f"{k}×{k}, stride {spec.get('stride', 1 if spec['type'] == 'conv' else k)}, "
                     f"'{spec.get('padding', 'valid')}'")
        if spec.get("dilation", 1) != 1:
            parts.append(f"dilation {spec['dilation']}")
    if "units" in spec:
        parts.append(f"{spec['units']} units")
    return ", ".join(parts)


def first_difference(actual: list, expected: list, specs) -> str:
    """'layer 3 (conv 5×5, stride 2, 'same')' for the first row that differs."""
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a != e:
            return f"layer {i} ({describe_spec(specs[i])})"
    return "no layer"


# ---------------------------------------------------------------------------------------------
# student models and blocks, once per submission

_STATE: dict = {"submission": None, "models": {}}


def _built(student, key: tuple, build) -> object:
    if _STATE["submission"] != str(student.files):
        _STATE.update(submission=str(student.files), models={})
    models = _STATE["models"]
    if key not in models:
        try:
            models[key] = build()
        except StudentError as exc:
            models[key] = str(exc)
    if isinstance(models[key], str):
        raise StudentError(models[key])
    return models[key]


def student_model(student, fn: str, *args):
    """student.model(fn, *args), built once per submission; a failure is remembered and raised again."""
    return _built(student, ("model", fn, args), lambda: student.model(fn, *args))


def student_block(student, fn: str, input_shape: tuple, *args):
    """The block fn(keras.Input(input_shape), *args) as a model, built once per submission."""
    return _built(student, ("block", fn, input_shape, args), lambda: student.block(fn, input_shape, *args))


# ---------------------------------------------------------------------------------------------
# functional graphs

ACTIVATIONS = ("Activation", "ReLU")


def kind(layer) -> str:
    return type(layer).__name__


def layers_of(model) -> list:
    """The model's layers, input layers left out."""
    return [layer for layer in model.layers if kind(layer) != "InputLayer"]


def producer(tensor):
    """The layer whose output the tensor is."""
    return tensor._keras_history[0]


def inputs_of(layer) -> list:
    """The tensors a layer was called on (a list, also for a single input)."""
    value = layer.input
    return list(value) if isinstance(value, (list, tuple)) else [value]


def chain_to(tensor, start) -> list | None:
    """The layers from tensor back to the tensor start, along single-input layers; None if it does not get there."""
    chain = []
    while tensor is not start:
        layer = producer(tensor)
        parents = inputs_of(layer) if kind(layer) != "InputLayer" else []
        if len(parents) != 1:
            return None
        chain.append(layer)
        tensor = parents[0]
    return chain[::-1]


def pair(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def activation(layer) -> str | None:
    """'relu', ... for an activation layer or a layer with an activation; None if linear."""
    if kind(layer) == "ReLU":
        return "relu"
    act = layer.get_config().get("activation")
    if isinstance(act, dict):
        act = act.get("config", {}).get("name") or act.get("class_name")
    return None if act in (None, "linear") else str(act)


def residual_params(c_in: int, filters: int, projection: bool) -> set[int]:
    """The parameter counts a correct basic block may have: with or without conv biases and, for the
    projection, with or without its BatchNormalization (a BN layer holds 4 numbers per channel)."""
    counts = set()
    for bias in (0, 1):
        branch = 9 * c_in * filters + 9 * filters * filters + 2 * bias * filters + 2 * 4 * filters
        if not projection:
            counts.add(branch)
            continue
        for bn in (0, 1):
            counts.add(branch + c_in * filters + bias * filters + bn * 4 * filters)
    return counts


# ---------------------------------------------------------------------------------------------
# ResNet-8 and its plain twin: weights and retraining

# The grader's retraining recipe for both: 4,000 stratified CIFAR-10 training images, two epochs of batch 64,
# 2,000 stratified test images; BatchNormalization momentum 0.9 so that 125 steps suffice for its statistics.
RECIPE = training.Recipe(name="cnn-architectures-cifar10", dataset="cifar10", batch_size=64, epochs=2,
                         train_subset=4000, test_subset=2000, bn_momentum=0.9)
RECIPE_TEXT = "Adam, batch 64, 2 epochs of 4,000 CIFAR-10 images scaled to [0, 1]"


def frozen_report(model) -> str:
    frozen = [layer.name for layer in layers_of(model) if layer.weights and not layer.trainable]
    if frozen or not model.trainable:
        return (f" Some layers are frozen (trainable=False: {', '.join(frozen[:6]) or 'the whole model'}), so "
                "training cannot change them; do not set trainable=False.")
    return ""


def retrained(student, config, data_dir, metrics: dict, build: str, prefix: str):
    """(model, RetrainResult) of the student's architecture trained from scratch with RECIPE."""
    from grader.course.datasets import load_cifar10

    model = student_model(student, build)
    params, macs = training.architecture_cost(model)
    limits = config.retraining_limits
    max_params, max_macs = limits[f"{prefix}_max_params"], limits[f"{prefix}_max_multiply_adds"]
    if params > max_params or macs > max_macs:
        raise AssertionError(
            f"{build}() has {params:,} parameters and {macs:,} multiply-adds per image; the grader retrains "
            f"architectures of at most {max_params:,} parameters and {max_macs:,} multiply-adds (10 times the "
            "reference), so it did not train this one. Use the layer sizes the assignment asks for")
    began = time.monotonic()
    try:
        result = training.retrain(model, load_cifar10(data_dir), RECIPE)
    except Exception as exc:
        raise AssertionError(f"the grader could not train your {build}() architecture from scratch "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
    metrics["train_eval_seconds"] = round(time.monotonic() - began, 3)
    metrics[f"{prefix}_retrain_accuracy"] = round(result.accuracy, 4)
    metrics[f"{prefix}_retrain_cached"] = result.cached
    return model, result
