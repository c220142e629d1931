"""The grader's own training: a fixed, seeded, deterministic retraining recipe, and its cache.

``retrain_and_evaluate(model, dataset, recipe)`` clones the architecture of a student's model with
fresh weights, trains it with the grader's recipe and returns the test accuracy. Whatever weights the
student submitted, this shows that the architecture learns.

Results are cached on disk by ``retrain_key``: sha256 of the architecture fingerprint (the model
config with every layer name replaced by its position, see ``architecture_fingerprint``), the
recipe, the dataset digest and the TensorFlow/Keras versions. Identical architectures therefore
train once per class. The cache folder is ``cache_dir`` or ``$GRADER_CACHE_DIR`` or
``~/.cache/cnn-autograder``; entries are small JSON files written atomically (tmp + os.replace),
and a lock file makes concurrent graders wait for one training instead of repeating it.

Determinism: ``keras.utils.set_random_seed(recipe.seed)`` before the clone (fresh weights, dropout,
shuffling), ``tf.config.experimental.enable_op_determinism()`` (process-wide, irreversible), a seeded
numpy subset. The same architecture, recipe and data give the same accuracy on the same machine.

The recipes are fixed here; their thresholds live in the assignment's config ([thresholds]).
Measured on the 2-core grading machine, see solutions/keras_models/assignment.toml.

``evaluate_weights`` evaluates submitted weights, memoized per process by content (architecture,
weights file bytes, inputs), so one process grading several identical submissions evaluates once.

``train_solution_weights(assignment, data_dir)`` executes a master notebook with nbclient so
that its training cells write the solution weights (``make solution-weights``, i.e.
``python -m grader solution-weights keras_models``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from grader.config import Assignment
from grader.results import write_atomic

__all__ = [
    "LENET_RECIPE",
    "VGG_RECIPE",
    "Recipe",
    "RetrainResult",
    "architecture_fingerprint",
    "cache_root",
    "evaluate_weights",
    "retrain",
    "retrain_and_evaluate",
    "retrain_key",
    "train_solution_weights",
]

CACHE_ENV = "GRADER_CACHE_DIR"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the grader trains an architecture from scratch. Every field is part of the cache key."""

    name: str
    dataset: str  # "mnist" or "cifar10": only a label, the data itself is passed in
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 1
    train_subset: int | None = None  # train on this many images (seeded, class-stratified), None: all
    test_subset: int | None = None  # evaluate on this many test images (seeded, stratified), None: all
    seed: int = 0
    scale: float = 1.0 / 255.0  # inputs are x.astype(float32) * scale (the [0, 1] of the preprocess contract)
    bn_momentum: float | None = None  # override BatchNormalization momentum (short budgets)
    eval_batch_size: int = 500
    version: int = 1  # bump to invalidate cached results when the training code changes


# LeNet-5: the recipe, Adam, batch 128, one epoch on the full MNIST training set.
LENET_RECIPE = Recipe(name="lenet5-mnist", dataset="mnist")

# VGG: what a 2-core machine affords inside the 120 s per submission (about 30 s for the solution):
# 4,000 stratified CIFAR-10 training images, two epochs of batch 64, evaluated on 2,000 stratified
# test images. BatchNormalization momentum 0.9 so that 125 steps are enough for its moving statistics.
VGG_RECIPE = Recipe(name="vgg-cifar10", dataset="cifar10", batch_size=64, epochs=2, train_subset=4000,
                    test_subset=2000, bn_momentum=0.9)


@dataclasses.dataclass(frozen=True)
class RetrainResult:
    accuracy: float
    cached: bool
    seconds: float  # time spent training and evaluating now (0 on a cache hit)
    train_seconds: float  # time the training took when it was done (stored in the cache)
    key: str


# ---------------------------------------------------------------------------------------------
# fingerprints and keys


_MODEL_CLASSES = ("Functional", "Sequential", "Model")


def _layer_names(config) -> list[str]:
    """Names of every layer and model in a serialized config, in order of appearance.

    Read from the config rather than the objects: a Sequential model hides its InputLayer, whose
    automatic name (input_layer, input_layer_1, ...) still appears in the config.
    """
    names: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            inner = obj.get("config")
            if ("class_name" in obj and isinstance(inner, dict) and isinstance(inner.get("name"), str)
                    and (str(obj.get("module") or "").startswith("keras.layers")
                         or obj["class_name"] in _MODEL_CLASSES)):
                if inner["name"] not in names:
                    names.append(inner["name"])
            for value in obj.values():
                walk(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                walk(value)

    walk(config)
    return names


def _rename(obj, mapping):
    if isinstance(obj, dict):
        return {k: _rename(v, mapping) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rename(v, mapping) for v in obj]
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    return obj


def canonical_config(model) -> dict:
    """The model's serialized config with every layer (and model) name replaced by its position."""
    import keras

    config = keras.saving.serialize_keras_object(model)
    mapping = {name: f"#{i}" for i, name in enumerate(_layer_names(config))}
    return _rename(config, mapping)


def architecture_fingerprint(model) -> str:
    """sha256 of the canonical config: the same for the same architecture whatever the names."""
    text = json.dumps(canonical_config(model), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


def retrain_key(model, dataset, recipe: Recipe) -> str:
    payload = {
        "architecture": architecture_fingerprint(model),
        "recipe": dataclasses.asdict(recipe),
        "data": f"{dataset.name}:{dataset.digest}",
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# cache


def cache_root(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.path.expanduser("~")) / ".cache" / "cnn-autograder"


def _cache_file(cache_dir, key: str) -> Path:
    return cache_root(cache_dir) / "retrain" / f"{key}.json"


def _read_cache(path: Path) -> dict | None:
    try:
        entry = json.loads(path.read_text())
        float(entry["accuracy"])
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(path: Path):
    """Exclusive lock beside a cache entry (no-op where fcntl or the folder is unavailable)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_suffix(".lock"), "a")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


# ---------------------------------------------------------------------------------------------
# training


def _stratified(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of n examples, as balanced over the classes as the data allows, in seeded order."""
    rng = np.random.default_rng(seed)
    if n is None or n >= len(y):
        return rng.permutation(len(y))
    classes = np.unique(y)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    take = [min(len(p), n // len(classes)) for p in per_class]
    chosen = [p[:t] for p, t in zip(per_class, take)]
    rest = np.concatenate([p[t:] for p, t in zip(per_class, take)])
    chosen.append(rng.permutation(rest)[: n - sum(take)])
    return rng.permutation(np.concatenate(chosen))


def prepare_inputs(x: np.ndarray, model_input_shape, scale: float) -> np.ndarray:
    """uint8 images -> float32 * scale, with a channel axis added when the model expects one."""
    x = x.astype(np.float32) * np.float32(scale)
    if model_input_shape is not None and len(model_input_shape) == x.ndim + 1 and model_input_shape[-1] == 1:
        x = x[..., None]  # (N, H, W) images for a (None, H, W, 1) model
    return x


def _model_input_shape(model):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):  # several inputs: not something these recipes train
        raise ValueError("the model has several inputs; the grader's recipe trains single-input models")
    return shape


def _clone_function(recipe: Recipe):
    import keras

    def clone(layer):
        config = layer.get_config()
        if recipe.bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            config["momentum"] = recipe.bn_momentum
        return layer.__class__.from_config(config)

    return clone


def _accuracy(model, x, y, batch_size) -> float:
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != len(y):
        raise ValueError(f"the model's output has shape {probs.shape}, expected ({len(y)}, num_classes)")
    return float(np.mean(np.argmax(probs, axis=1) == y))


def _train_and_evaluate(model, dataset, recipe: Recipe) -> float:
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(recipe.seed)
    clone = keras.models.clone_model(model, clone_function=_clone_function(recipe), recursive=True)
    if recipe.optimizer != "adam":
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    clone.compile(optimizer=keras.optimizers.Adam(learning_rate=recipe.learning_rate),
                  loss="sparse_categorical_crossentropy")
    shape = _model_input_shape(clone)
    train = _stratified(dataset.y_train, recipe.train_subset, recipe.seed)
    x = prepare_inputs(dataset.x_train[train], shape, recipe.scale)
    y = dataset.y_train[train].astype(np.int32)
    clone.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, shuffle=True, verbose=0)
    del x
    test = np.sort(_stratified(dataset.y_test, recipe.test_subset, recipe.seed + 1))
    xt = prepare_inputs(dataset.x_test[test], shape, recipe.scale)
    return _accuracy(clone, xt, dataset.y_test[test], recipe.eval_batch_size)


def retrain(model, dataset, recipe: Recipe, cache_dir=None, use_cache: bool = True) -> RetrainResult:
    """Train a fresh copy of model's architecture with recipe; cached by retrain_key."""
    start = time.perf_counter()
    key = retrain_key(model, dataset, recipe)
    path = _cache_file(cache_dir, key)
    if use_cache and (entry := _read_cache(path)) is not None:
        return RetrainResult(entry["accuracy"], True, 0.0, entry.get("train_seconds", 0.0), key)
    with _locked(path) if use_cache else contextlib.nullcontext():
        if use_cache and (entry := _read_cache(path)) is not None:  # another grader just trained it
            return RetrainResult(entry["accuracy"], True, time.perf_counter() - start,
                                 entry.get("train_seconds", 0.0), key)
        t0 = time.perf_counter()
        accuracy = _train_and_evaluate(model, dataset, recipe)
        seconds = time.perf_counter() - t0
        if use_cache:
            entry = {"accuracy": accuracy, "train_seconds": round(seconds, 2), "recipe": dataclasses.asdict(recipe),
                     "data": f"{dataset.name}:{dataset.digest}", "versions": _versions(),
                     "architecture": architecture_fingerprint(model), "created": time.time()}
            try:
                write_atomic(path, json.dumps(entry, indent=1, sort_keys=True))
            except OSError:
                pass  # a read-only cache only costs time
    return RetrainResult(accuracy, False, time.perf_counter() - start, seconds, key)


def retrain_and_evaluate(model, dataset, recipe: Recipe, cache_dir=None) -> float:
    """Test accuracy of model's architecture trained from scratch with the grader's recipe."""
    return retrain(model, dataset, recipe, cache_dir).accuracy


# ---------------------------------------------------------------------------------------------
# submitted weights

_EVAL_MEMO: dict[str, float] = {}


def _digest_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.shape}{a.dtype.str}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def evaluate_weights(model, weights_path, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Accuracy of model with the weights file loaded, on inputs x (already preprocessed), labels y.

    Memoized per process by (architecture fingerprint, weights file bytes, x, y). Raises whatever
    keras raises when the file does not fit the architecture; the caller words the message.
    """
    weights_path = Path(weights_path)
    key = hashlib.sha256("|".join([
        architecture_fingerprint(model), hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        _digest_array(x), _digest_array(y)]).encode()).hexdigest()
    if key not in _EVAL_MEMO:
        model.load_weights(str(weights_path))
        _EVAL_MEMO[key] = _accuracy(model, x, np.asarray(y), batch_size)
    return _EVAL_MEMO[key]


# ---------------------------------------------------------------------------------------------
# solution weights


def train_solution_weights(assignment: Assignment, data_dir: str | None = None, timeout: float = 3600.0) -> list[Path]:
    """Execute the assignment's master notebook with nbclient, in its folder; return the weights files.

    The notebook's training cells read the data folder from $CNN_DATA_DIR (set here to data_dir, when
    given) and save the weights beside the notebook. Then the code lines listed in the assignment's
    config under [solution_weights] after = [...] run in the same kernel (e.g. to write the files some
    mutants use). The notebook file itself is not rewritten. Stream outputs are printed as cells finish.
    """
    import nbformat
    from nbclient import NotebookClient

    folder, notebook = assignment.folder, assignment.master
    nb = nbformat.read(notebook, as_version=4)
    for line in assignment.solution_weights_after:
        nb.cells.append(nbformat.v4.new_code_cell(line))
    if data_dir:
        os.environ["CNN_DATA_DIR"] = str(Path(data_dir).resolve())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.weights.h5")}

    def report(cell, cell_index, execute_reply=None):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                print(out.get("text", ""), end="", flush=True)
            elif out.get("output_type") == "error":
                print(f"cell {cell_index + 1}: {out.get('ename')}: {out.get('evalue')}", flush=True)

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}, on_cell_executed=report)
    client.execute()
    written = sorted(p for p in folder.rglob("*.weights.h5") if before.get(p) != p.stat().st_mtime_ns)
    print(f"executed {notebook.name} in {time.perf_counter() - start:.0f} s; wrote "
          f"{', '.join(str(p.relative_to(folder)) for p in written) or 'no weights files'}")
    return written
