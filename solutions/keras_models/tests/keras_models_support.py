"""Helpers shared by the keras_models hidden tests (grader process only).

- ``student_model``: the student's model (student.model), cached for the current submission;
- ``preprocessed``: a test set run through the student's preprocess function, cached likewise;
- layer analysis of LeNet-5 and VGG models, and the parameter-count diagnosis of LeNet-5.

The grader may run pytest several times in one process and this module stays imported, so the
caches are keyed by the submission (student.files) and only the latest submission is kept.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from grader.course import training
from grader.errors import ModelRefused, StudentError


@pytest.fixture(scope="session", autouse=True)
def keras_imported():
    """Keras (TensorFlow: seconds) imported as the session starts, while the student process boots and imports it
    too: the two imports overlap instead of following each other. Every test module imports this fixture."""
    import keras  # noqa: F401


_STATE: dict = {"submission": None, "models": {}, "arrays": {}, "verdicts": {}}


def _state(student) -> dict:
    key = str(student.files)
    if _STATE["submission"] != key:
        _STATE.update(submission=key, models={}, arrays={}, verdicts={})
    return _STATE


def _call_text(fn: str, args: tuple) -> str:
    return f"{fn}({', '.join(repr(a) for a in args)})"


def student_model(student, fn: str, *args):
    """student.model(fn, *args) once per submission; a failure is remembered and raised again. A function that
    hung, or whose model a rule refuses (ModelRefused), is not called again with other arguments."""
    models = _state(student)["models"]
    key = (fn, args)
    final = [v for (name, _), v in models.items() if name == fn and isinstance(v, StudentError)
             and (isinstance(v, ModelRefused) or "did not return" in str(v))]
    if key not in models and final:
        models[key] = final[0]
    if key not in models:
        try:
            models[key] = student.model(fn, *args)
        except StudentError as exc:
            models[key] = exc
    value = models[key]
    if isinstance(value, StudentError):
        raise type(value)(str(value))
    return value


def _validated(fn: str, out, shape: tuple, what: str) -> np.ndarray | str:
    """out as float32 if it has `shape` and finite numbers, else the reason why not."""
    out = np.asarray(out)
    if out.shape != shape:
        return f"{fn} returned shape {out.shape} for the {shape[0]:,} {what} (expected {shape})"
    if out.dtype.kind not in "fiu" or not np.all(np.isfinite(out)):
        return f"{fn} returned {out.dtype} values that are not all finite numbers"
    return out.astype(np.float32, copy=False)


def preprocessed(student, fn: str, x: np.ndarray, digest: str, shape: tuple) -> np.ndarray:
    """The student's fn(x) as float32, checked to have `shape`; cached per submission."""
    arrays = _state(student)["arrays"]
    key = (fn, digest)
    if key not in arrays:
        try:
            arrays[key] = _validated(fn, student.call(fn, x), shape, "test images")
        except StudentError as exc:
            arrays[key] = f"{fn} failed, so the grader could not feed the test set to your model: {exc}"
        if isinstance(arrays[key], str) and "returned" in arrays[key]:
            arrays[key] += ", so the grader could not evaluate your weights"
    value = arrays[key]
    if isinstance(value, str):
        raise AssertionError(value)
    return value


# ---------------------------------------------------------------------------------------------
# preprocessing (the hidden tests of test_keras_models_preprocess.py, and the retraining's choice of inputs)

IMAGE_SHAPES = {"preprocess_mnist": (28, 28), "preprocess_cifar": (32, 32, 3)}
OUTPUT_SHAPES = {"preprocess_mnist": (28, 28, 1), "preprocess_cifar": (32, 32, 3)}


def images(rng, shape) -> np.ndarray:
    """Random uint8 images in which both ends of the pixel range are present."""
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    x.reshape(-1)[:2] = (0, 255)
    return x


def check_preprocess_shape(student, fn: str, rng, n: int) -> None:
    """fn on n uint8 images returns a float32 NumPy array of the expected shape."""
    x = images(rng, (n, *IMAGE_SHAPES[fn]))
    out = student.call(fn, x)
    expected = (n, *OUTPUT_SHAPES[fn])
    assert isinstance(out, np.ndarray), f"{fn} must return a NumPy array, got {type(out).__name__}"
    hint = (": Conv2D needs a channel axis (x[..., np.newaxis])" if fn == "preprocess_mnist"
            else " (the same shape as its input)")
    assert out.shape == expected, (
        f"{fn} on uint8 images of shape {x.shape} returned shape {out.shape}; expected (N, "
        f"{', '.join(map(str, OUTPUT_SHAPES[fn]))}){hint}")
    assert out.dtype == np.float32, f"{fn} returned dtype {out.dtype}; expected float32"


def _values_unmodified(student, fn: str, x: np.ndarray) -> np.ndarray:
    before = x.copy()
    out, (x_after,), _ = student.call_with_inputs(fn, x)
    assert np.array_equal(x_after, before), f"{fn} modified its input array; work on a copy"
    assert np.size(out) == x.size, f"{fn} returned {np.size(out)} values for {x.size} pixels"
    out = np.asarray(out, dtype=np.float64).reshape(x.shape)
    assert np.all(np.isfinite(out)), f"{fn} returned values that are not finite"
    return out


def check_preprocess_mnist_values(student, rng) -> None:
    """preprocess_mnist leaves its input alone and maps 0..255 monotonically onto [0, 1], 0 -> 0 and 255 -> 1."""
    x = images(rng, (6, 28, 28))
    out = _values_unmodified(student, "preprocess_mnist", x)
    lo, hi = out.min(), out.max()
    assert lo >= 0.0 and hi <= 1.0, (
        f"preprocess_mnist returned values in [{lo:.4g}, {hi:.4g}]; they must lie in [0, 1] (divide by 255)")
    flat_x, flat = x.reshape(-1).astype(np.int64), out.reshape(-1)
    assert abs(flat[flat_x == 0].max()) < 1e-6 and abs(flat[flat_x == 255].min() - 1.0) < 1e-6, (
        "preprocess_mnist must map pixel 0 to 0.0 and pixel 255 to 1.0 (x / 255)")
    order = np.argsort(flat_x, kind="stable")
    assert np.all(np.diff(flat[order]) >= -1e-7), "brighter pixels must not get smaller values"


def check_preprocess_cifar_values(student, rng) -> None:
    """preprocess_cifar leaves its input alone, returns finite values, and keeps every channel's content."""
    x = images(rng, (4, 32, 32, 3))
    out = _values_unmodified(student, "preprocess_cifar", x)
    for c in range(3):
        assert np.ptp(out[..., c]) > 0, f"preprocess_cifar: channel {c} became constant, so the image content is lost"


PREPROCESS_CHECKS = {"preprocess_mnist": check_preprocess_mnist_values, "preprocess_cifar": check_preprocess_cifar_values}


def preprocess_passes(student, fn: str) -> bool:
    """True if fn passes the checks of its hidden tests (on fixed-seed images); remembered per submission."""
    verdicts = _state(student)["verdicts"]
    if fn not in verdicts:
        rng = np.random.default_rng(0)
        try:
            for n in (5, 1):
                check_preprocess_shape(student, fn, rng, n)
            PREPROCESS_CHECKS[fn](student, rng)
            verdicts[fn] = True
        except AssertionError:  # StudentError included
            verdicts[fn] = False
    return verdicts[fn]


def model_output_shape(model) -> tuple:
    """The model's output shape, e.g. (None, 10); AssertionError if it has several outputs or none."""
    outputs = getattr(model, "outputs", None) or []
    assert len(outputs) == 1, f"the model must have exactly one output, it has {len(outputs)}"
    return tuple(outputs[0].shape)


def predict(model, x) -> np.ndarray:
    import keras
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


# ---------------------------------------------------------------------------------------------
# layers

ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")
DROPOUT_LAYERS = ("Dropout", "SpatialDropout2D", "GaussianDropout", "AlphaDropout", "GaussianNoise")
INPUT_PREPROCESSING = ("Rescaling", "Normalization", "RandomFlip", "RandomTranslation", "RandomRotation",
                       "RandomZoom", "RandomContrast", "RandomBrightness")


def flat_layers(model) -> list:
    """The model's layers in order, nested models expanded, input layers left out."""
    out = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and getattr(layer, "layers", None) is not None:
            out += flat_layers(layer)
        else:
            out.append(layer)
    return out


def kind(layer) -> str:
    return type(layer).__name__


def activation_name(layer) -> str | None:
    """'relu', 'softmax', ... for an activation layer or a layer with an activation; None if linear."""
    k = kind(layer)
    if k == "ReLU":
        cfg = layer.get_config()
        plain = not cfg.get("max_value") and not cfg.get("negative_slope") and not cfg.get("threshold")
        return "relu" if plain else "relu (modified)"
    if k == "Softmax":
        return "softmax"
    if k in ("LeakyReLU", "ELU", "PReLU"):
        return k.lower()
    act = layer.get_config().get("activation")
    if act is None:
        return None
    if isinstance(act, dict):  # a serialized activation
        act = act.get("config", {}).get("name") or act.get("class_name")
    act = str(act).lower()
    return None if act == "linear" else act


def pair(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def spatial(shape) -> tuple:
    return tuple(shape[1:3])


def output_shape(layer) -> tuple:
    return tuple(layer.output.shape)


def input_shape(layer) -> tuple:
    return tuple(layer.input.shape)


def arrow(names) -> str:
    return " → ".join(names) if names else "(no layers)"


def final_activation(layers_) -> str | None:
    """The activation applied to the model's output: the last non-dropout layer's."""
    for layer in reversed(layers_):
        if kind(layer) in DROPOUT_LAYERS:
            continue
        return activation_name(layer)
    return None


def frozen_report(model) -> str:
    """Names the frozen layers of a model, or ''."""
    frozen = [l.name for l in flat_layers(model) if l.weights and not l.trainable]
    if frozen or not model.trainable:
        names = ", ".join(frozen[:6]) + (" ..." if len(frozen) > 6 else "")
        return (f" Some layers are frozen (trainable=False: {names or 'the whole model'}), so training cannot "
                "change them; do not set trainable=False.")
    return ""


# ---------------------------------------------------------------------------------------------
# LeNet-5

LENET_POOLS = ("MaxPooling2D", "AveragePooling2D")  # the 1998 paper subsamples by averaging
LENET_TYPES = ["Conv2D", "pooling", "Conv2D", "pooling", "Flatten", "Dense", "Dense", "Dense"]


def lenet_kind(layer) -> str:
    """kind(layer), with both pooling layers LeNet-5 may use called 'pooling'."""
    return "pooling" if kind(layer) in LENET_POOLS else kind(layer)
LENET_PARAMS = 61_706


def lenet_params(n=28, channels=1, classes=10, pad1="same", pad2="valid", k1=5, k2=5, f1=6, f2=16,
                 dense=(120, 84), bias=True, pools=2) -> int:
    """Parameter count of a LeNet-5 variant (for diagnosing the usual slips)."""
    b = 1 if bias else 0
    size = n if pad1 == "same" else n - k1 + 1
    size //= 2
    size = size if pad2 == "same" else size - k2 + 1
    if pools == 2:
        size //= 2
    total = f1 * (k1 * k1 * channels + b) + f2 * (k2 * k2 * f1 + b)
    width = size * size * f2
    for units in (*dense, classes):
        total += width * units + units * b
        width = units
    return total


LENET_SLIPS = {
    lenet_params(pad1="valid"): "the first convolution uses padding='valid' on the 28×28 input: its maps shrink to "
                                "24×24 and Flatten gives 256 values instead of 400. Use padding='same' there",
    lenet_params(pad2="same"): "the second convolution uses padding='same': Flatten gives 784 values instead of "
                               "400. Use padding='valid' there",
    lenet_params(pad1="valid", pad2="same"): "the paddings are swapped: the first convolution must be 'same' "
                                             "and the second 'valid'",
    lenet_params(bias=False): "the layers have no biases (use_bias=False); keep the biases",
    lenet_params(dense=(84, 120)): "the hidden Dense layers are swapped: Dense 120 comes first, then Dense 84",
    lenet_params(f1=16, f2=6): "the filter counts are swapped: 6 filters in the first convolution, 16 in the second",
    lenet_params(k1=3, k2=3): "the kernels are 3×3; LeNet-5 uses 5×5 kernels",
    lenet_params(pools=1): "a pooling layer is missing after the second convolution",
    lenet_params(dense=(120,)): "the hidden Dense 84 layer is missing (Dense 120, then Dense 84)",
    lenet_params(dense=(84,)): "the hidden Dense 120 layer is missing (Dense 120, then Dense 84)",
}


def lenet_expected_per_layer(num_classes=10) -> list[int]:
    return [156, 0, 2416, 0, 0, 48120, 10164, 84 * num_classes + num_classes]


# ---------------------------------------------------------------------------------------------
# VGG


def vgg_blocks(layers_) -> tuple[list[dict], list, list[str]]:
    """Split a VGG into blocks ending with a pooling layer; return (blocks, head layers, problems)."""
    blocks, current, problems = [], {"convs": [], "layers": []}, []
    i = 0
    # input preprocessing layers before the first convolution are fine
    while i < len(layers_) and kind(layers_[i]) in INPUT_PREPROCESSING:
        i += 1
    paddings = padding_layers(layers_)
    for position, layer in enumerate(layers_[i:], i):
        k = kind(layer)
        if k in ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dense"):
            break
        i += 1
        current["layers"].append(layer)
        if position in paddings:
            pass  # ZeroPadding2D + 'valid' convolution: a 'same' convolution
        elif k == "Conv2D":
            current["convs"].append(layer)
        elif k in ("MaxPooling2D", "AveragePooling2D"):
            current["pool"] = layer
            blocks.append(current)
            current = {"convs": [], "layers": []}
        elif k in ("BatchNormalization",) + ACTIVATION_LAYERS + DROPOUT_LAYERS:
            pass
        else:
            problems.append(f"unexpected layer {layer.name} ({k}) in the convolutional part")
    if current["layers"] and not all(kind(l) in ("BatchNormalization",) + DROPOUT_LAYERS for l in current["layers"]):
        if current["convs"]:
            problems.append(f"the last {len(current['convs'])} convolution(s) are not followed by a 2×2 max pool")
        else:
            problems.append("layers after the last pooling layer and before the classifier: "
                            + ", ".join(f"{l.name} ({kind(l)})" for l in current["layers"]))
    return blocks, layers_[i:], problems


def effective_padding(layers_, index) -> str:
    """The padding the Conv2D at layers_[index] computes: 'same' also for a 'valid' convolution right after a
    ZeroPadding2D of (k - 1) / 2 on every side (odd kernel, stride 1, no dilation), which computes the same."""
    conv = layers_[index]
    if conv.padding != "valid" or index == 0 or kind(layers_[index - 1]) != "ZeroPadding2D":
        return conv.padding
    rows, cols = pair(conv.kernel_size)
    pad = tuple(tuple(side) for side in layers_[index - 1].padding)
    if (rows % 2 and cols % 2 and pair(conv.strides) == (1, 1) and pair(conv.dilation_rate) == (1, 1)
            and pad == (((rows - 1) // 2,) * 2, ((cols - 1) // 2,) * 2)):
        return "same"
    return conv.padding


def padding_layers(layers_) -> set[int]:
    """Positions of the ZeroPadding2D layers that make the next convolution a 'same' one (see effective_padding)."""
    return {i - 1 for i, layer in enumerate(layers_) if kind(layer) == "Conv2D" and layer.padding == "valid"
            and effective_padding(layers_, i) == "same"}


def conv_relu(layers_, index) -> bool:
    """True if the Conv2D at layers_[index] is followed by ReLU (its own, or after BatchNormalization)."""
    if activation_name(layers_[index]) == "relu":
        return True
    if activation_name(layers_[index]) is not None:
        return False
    for layer in layers_[index + 1:]:
        k = kind(layer)
        if k in ("BatchNormalization",) + DROPOUT_LAYERS:
            continue
        return k in ACTIVATION_LAYERS and activation_name(layer) == "relu"
    return False


# ---------------------------------------------------------------------------------------------
# submitted weights


def weights_load_message(exc: Exception, weights: str, fn: str) -> str:
    """Student-readable reason why Keras could not load a weights file into the student's model."""
    import re
    text = str(exc)
    head = f"{weights} does not fit the model {fn}() builds"
    layer = re.search(r"object <(\w+) name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    count = re.search(r"A total of (\d+) objects could not be loaded", text)
    if layer and shapes:
        detail = (f": layer {layer.group(2)} ({layer.group(1)}) has a weight of shape {shapes.group(1)} but the "
                  f"file holds shape {shapes.group(2)}")
        if count and int(count.group(1)) > 1:
            detail += f" ({count.group(1)} layers differ)"
    else:
        first = text.strip().splitlines()[0] if text.strip() else ""
        detail = f" ({type(exc).__name__}: {first[:240]})"
    return (f"{head}{detail}. Save the weights of a model built by your current {fn}, after training it "
            "(retrain if you changed the architecture)")


def accuracy_message(what: str, accuracy: float, n: int, dataset: str, threshold: float, advice: str,
                     preprocess: str) -> str:
    if accuracy < 0.2:
        return (f"{what} with your weights reaches {accuracy:.4f} on the {n:,} {dataset} test images; at least "
                f"{threshold:.2f} is required. An accuracy near 0.10 (chance) means the weights are untrained "
                f"(saved before training?) or do not match your preprocessing: train, then save, and use "
                f"{preprocess} for training too.")
    return (f"{what} with your weights reaches {accuracy:.4f} on the {n:,} {dataset} test images; at least "
            f"{threshold:.2f} is required. {advice}")


def submitted_weights_accuracy(student, metrics: dict, *, build: str, preprocess: str, weights: str, dataset,
                               shape: tuple, key: str) -> tuple[float, int]:
    """(accuracy, test images) of the submitted weights file loaded into the student's architecture."""
    path = student.files / weights
    assert path.is_file(), (f"{weights} is missing from your submission: after training, save it beside the "
                            f"notebook with model.save_weights('{weights}') and submit it with the notebook")
    model = student_model(student, build)
    x = preprocessed(student, preprocess, dataset.x_test, dataset.digest, shape)
    began = time.monotonic()
    try:
        accuracy = training.evaluate_weights(model, path, x, dataset.y_test)
    except Exception as exc:
        raise AssertionError(weights_load_message(exc, weights, build)) from None
    metrics["train_eval_seconds"] = round(time.monotonic() - began, 3)
    metrics[key] = round(accuracy, 4)
    return accuracy, len(x)


def check_retraining_cost(model, limits: dict[str, int], prefix: str, what: str) -> None:
    """Refuse, in seconds, an architecture far costlier than the grader's retraining budget allows."""
    params, macs = training.architecture_cost(model)
    max_params, max_macs = limits.get(f"{prefix}_max_params", 0), limits.get(f"{prefix}_max_multiply_adds", 0)
    if (max_params and params > max_params) or (max_macs and macs > max_macs):
        raise AssertionError(
            f"your {what} has {params:,} parameters and {macs:,} multiply-adds per image; the grader retrains "
            f"architectures of at most {max_params:,} parameters and {max_macs:,} multiply-adds (10 times the "
            "reference), so it did not train this one. Use the layer sizes the assignment asks for")


CHUNK = 10_000  # images per call when the student's preprocessing prepares the retraining set (31 MB of MNIST)


def retraining_inputs(student, fn: str, dataset, recipe, shape: tuple) -> tuple[training.Inputs | None, str]:
    """(inputs, how they were made): the recipe's images through the student's fn when fn passes its tests,
    else None (the grader's own scaling to [0, 1]). The arrays cross from the student process as data only."""
    if not preprocess_passes(student, fn):
        return None, f"scaled to [0, 1] by the grader, because your {fn} does not pass its tests"
    train, test = training.recipe_indices(dataset, recipe)
    try:
        x_test = preprocessed(student, fn, dataset.x_test, dataset.digest, (len(dataset.x_test), *shape))[test]
        parts = []
        for chunk in np.array_split(train, max(1, -(-len(train) // CHUNK))):
            out = _validated(fn, student.call(fn, dataset.x_train[chunk]), (len(chunk), *shape), "training images")
            if isinstance(out, str):
                raise AssertionError(out)
            parts.append(out)
    except AssertionError as exc:  # StudentError included
        return None, f"scaled to [0, 1] by the grader, because your {fn} failed on the training images ({exc})"
    return training.Inputs(np.concatenate(parts), x_test), f"preprocessed by your {fn}"


SLOW_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "softmax", "softsign", "exponential", "linear")


def unusual_findings(model, own_inputs: bool) -> list[str]:
    """What is unusual in a model that did not learn under the grader's recipe, in words for the student."""
    layers_ = flat_layers(model)
    found = [frozen_report(model).strip()] if frozen_report(model) else []
    output = final_activation(layers_)
    if output != "softmax":
        found.append(f"The output activation is {output or 'linear'}, not softmax: the grader trains with "
                     "cross-entropy on probabilities.")
    learned = [l for l in layers_ if kind(l) in ("Conv2D", "Dense")][:-1]
    hidden = {activation_name(l) or "linear" for l in learned}
    hidden |= {activation_name(l) or "linear" for l in layers_ if kind(l) in ACTIVATION_LAYERS}
    if learned and hidden <= set(SLOW_ACTIVATIONS):
        names = ", ".join(sorted(hidden))
        found.append(f"The hidden layers use {names} only, which learns slowly (or, linear, not at all) in the "
                     "grader's short training.")
    heavy = sorted({round(float(l.rate), 2) for l in layers_ if kind(l) in DROPOUT_LAYERS
                    and float(getattr(l, "rate", 0) or 0) >= 0.5})
    if heavy:
        found.append(f"Dropout of rate {', '.join(map(str, heavy))} slows the grader's short training.")
    scales = [float(l.scale) for l in layers_ if kind(l) == "Rescaling" and np.ndim(l.scale) == 0]
    if not own_inputs and any(abs(v) < 0.1 for v in scales):
        found.append(f"Your model rescales its input (Rescaling({scales[0]:.4g})), but the grader trained it on "
                     "inputs already in [0, 1].")
    return found


def retrain_failure_message(model, accuracy: float, threshold: float, how: str, what: str, own_inputs: bool) -> str:
    """Why a retrained architecture failed: what is unusual in it, or plainly that it did not learn enough."""
    head = (f"trained from scratch by the grader ({how}), your {what} architecture reaches {accuracy:.4f}; at "
            f"least {threshold:.2f} is required, whatever weights you submitted (chance is 0.10).")
    found = unusual_findings(model, own_inputs)
    if found:
        return f"{head} What is unusual in your model: {' '.join(found)}"
    return (f"{head} Nothing in your model looks unusual to the grader: the architecture did not learn enough "
            "under the grader's short training recipe.")


def retrained_accuracy(student, metrics: dict, *, build: str, preprocess: str, shape: tuple, dataset, recipe,
                       key: str, what: str, limits: dict[str, int], prefix: str):
    """(model, RetrainResult, how the inputs were made, whether they are the student's): the student's
    architecture trained from scratch with the grader's recipe, on the student's preprocessing when it passes
    its tests."""
    model = student_model(student, build)
    check_retraining_cost(model, limits, prefix, what)
    inputs, how = retraining_inputs(student, preprocess, dataset, recipe, shape)
    began = time.monotonic()
    try:
        result = training.retrain(model, dataset, recipe, inputs=inputs)
    except Exception as exc:
        raise AssertionError(f"the grader could not train your {what} architecture from scratch "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
    metrics["train_eval_seconds"] = round(time.monotonic() - began, 3)
    metrics[key] = round(result.accuracy, 4)
    metrics[key.replace("_accuracy", "_cached")] = result.cached
    metrics[key.replace("_accuracy", "_inputs")] = "student" if inputs is not None else "grader"
    return model, result, how, inputs is not None


def check_output_shape(student, build: str, args: tuple, expected: tuple) -> None:
    """The model built with these arguments has output shape expected."""
    shape = model_output_shape(student_model(student, build, *args))
    call = f"{build}({', '.join(map(repr, args))})"
    assert shape == expected, (f"{call} has output shape {shape}; expected {expected}. Use the input_shape and "
                               "num_classes arguments (keras.Input(shape=input_shape), Dense(num_classes))")


def check_softmax_rows(student, build: str, x: np.ndarray) -> None:
    """The default model's outputs for x are probabilities: non-negative rows summing to 1."""
    probs = predict(student_model(student, build), x)
    expected = (len(x), 10)
    assert probs.shape == expected, (f"the model's output for {len(x)} images has shape {probs.shape}; "
                                     f"expected {expected}")
    sums = probs.sum(axis=1)
    assert np.all(probs >= 0) and np.allclose(sums, 1.0, atol=1e-4), (
        f"the output rows sum to {np.round(sums, 4).tolist()}, not 1: the last Dense layer needs "
        "activation='softmax'")
