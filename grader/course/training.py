"""The grader's own training: a fixed, seeded, deterministic retraining recipe, and its cache.

``retrain_and_evaluate(model, dataset, recipe)`` clones the architecture of a student's model with
fresh weights, trains it with the grader's recipe and returns the test accuracy. Whatever weights the
student submitted, this shows that the architecture learns. The inputs are the recipe's images scaled
to [0, 1], or ``Inputs`` the caller gives (the student's own preprocessing of the recipe's images,
``recipe_indices``), so that a model that rescales its inputs itself is trained as its author meant.

Results are cached on disk by ``retrain_key``: sha256 of the architecture fingerprint (the model
config with the layer names, and only the names, replaced by their positions, see ``canonical_config``),
the recipe, the dataset digest, the digest of the inputs and the TensorFlow/Keras versions. Identical architectures therefore
train once per class. The cache folder is ``cache_dir`` or ``$GRADER_CACHE_DIR`` or
``~/.cache/cnn-autograder``; entries are small JSON files written atomically (tmp + os.replace),
and a lock file makes concurrent graders wait for one training instead of repeating it.

The cache folder is not trusted (see the cache section): every entry is authenticated with an
HMAC-SHA256 keyed by a secret only the grader can read (``key_file``: ``$GRADER_CACHE_KEY_FILE`` or
``<cache root>/private/cache-hmac.key``, mode 0600 in a 0700 folder, created on first use), and no
symbolic link under the cache folder is followed. A forged, foreign, truncated or corrupt entry is
retrained and overwritten.

Determinism: ``keras.utils.set_random_seed(recipe.seed)`` before the clone (fresh weights, dropout,
shuffling), ``tf.config.experimental.enable_op_determinism()`` (process-wide, irreversible), a seeded
numpy subset. The same architecture, recipe and data give the same accuracy on the same machine.

The recipes are fixed here; their thresholds live in the assignment's config ([thresholds]).
Measured on the 2-core grading machine, see solutions/keras_models/assignment.toml.

``evaluate_weights`` evaluates submitted weights, cached the same way by content (exact model config,
sha256 of the weights file bytes, inputs, versions), so a submission graded again, or an identical
one, is evaluated once.

``train_solution_weights(assignment, data_dir)`` executes a master notebook with nbclient so
that its training cells write the solution weights (``make solution-weights``, i.e.
``python -m grader solution-weights keras_models``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from grader.config import Assignment
from grader.sandbox.model_transfer import check_hdf5_weights

__all__ = [
    "LENET_RECIPE",
    "VGG_RECIPE",
    "CacheKeyError",
    "Inputs",
    "Recipe",
    "RetrainResult",
    "architecture_fingerprint",
    "cache_root",
    "evaluate_weights",
    "key_file",
    "recipe_indices",
    "retrain",
    "retrain_and_evaluate",
    "retrain_key",
    "scaled_inputs",
    "train_solution_weights",
]

CACHE_ENV = "GRADER_CACHE_DIR"
STEPS_PER_EXECUTION = 16  # training steps per call into TensorFlow: the same updates (the same accuracy), less
# Python per step: LeNet-5's 469 steps train 0.8 s faster


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
class Inputs:
    """The images a retraining uses, preprocessed: x_train[i] is dataset.x_train[recipe_indices(...)[0][i]],
    x_test likewise with the test indices; float32 of the model's input shape."""

    x_train: np.ndarray
    x_test: np.ndarray

    def digest(self) -> str:
        return hashlib.sha256((_digest_array(self.x_train) + _digest_array(self.x_test)).encode()).hexdigest()


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


def _is_layer_object(obj) -> bool:
    """A serialized Keras layer, operation or model: {"class_name": ..., "config": {...}, "module": "keras..."}."""
    if not (isinstance(obj, dict) and isinstance(obj.get("class_name"), str) and isinstance(obj.get("config"), dict)):
        return False
    module = str(obj.get("module") or "")
    return (module == "keras.layers" or module.startswith(("keras.layers.", "keras.src.layers", "keras.src.models",
                                                           "keras.models"))
            or obj["class_name"] in _MODEL_CLASSES)


class _Names:
    """Layer name -> "#i", numbered in order of first appearance."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def __call__(self, name):
        if not isinstance(name, str):
            return _canon(name, self)
        return self.mapping.setdefault(name, f"#{len(self.mapping)}")


def _canon(obj, names: _Names):
    """Copy of a serialized config with the layer names replaced where they are names, and only there.

    The structural places are: the "name" of a layer, operation or model (in its "config" and, in a
    functional model's "layers" list, beside it), the layer named by the keras_history of a serialized
    tensor (inbound nodes), the first item of each legacy inbound-node triple, and the layer of each
    [name, node, tensor] leaf of a functional model's input_layers and output_layers. Every other string
    (activations, paddings, initializer and dtype names, ...) is kept as it is, so that a layer named
    "relu" cannot make a sigmoid layer look like a ReLU one.
    """
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__" and isinstance(obj.get("config"), dict):
            return {k: (_canon_tensor_config(v, names) if k == "config" else _canon(v, names)) for k, v in obj.items()}
        if _is_layer_object(obj):
            return _canon_layer(obj, names)
        return {k: _canon(v, names) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canon(v, names) for v in obj]
    return obj


def _canon_tensor_config(config: dict, names: _Names) -> dict:
    out = {}
    for k, v in config.items():
        if k == "keras_history" and isinstance(v, (list, tuple)) and v:
            out[k] = [names(v[0]), *(_canon(x, names) for x in v[1:])]
        else:
            out[k] = _canon(v, names)
    return out


def _canon_layer(entry: dict, names: _Names) -> dict:
    """A layer object, or an entry of a model's "layers" list (whatever its module)."""
    out = {}
    for k, v in entry.items():
        if k == "name" and isinstance(v, str):
            out[k] = names(v)
        elif k == "config" and isinstance(v, dict):
            out[k] = _canon_layer_config(v, names)
        elif k == "inbound_nodes" and isinstance(v, list):
            out[k] = [_canon_node(node, names) for node in v]
        else:
            out[k] = _canon(v, names)
    return out


def _canon_layer_config(config: dict, names: _Names) -> dict:
    is_model = isinstance(config.get("layers"), list)  # Sequential, Functional (and nested ones)
    out = {}
    for k, v in config.items():
        if k == "name" and isinstance(v, str):
            out[k] = names(v)
        elif is_model and k == "layers":
            out[k] = [_canon_layer(e, names) if isinstance(e, dict) else _canon(e, names) for e in v]
        elif is_model and k in ("input_layers", "output_layers"):
            out[k] = _canon_refs(v, names)
        else:
            out[k] = _canon(v, names)
    return out


def _canon_node(node, names: _Names):
    if isinstance(node, list):  # legacy: [[layer name, node index, tensor index(, kwargs)], ...]
        return [[names(ref[0]), *(_canon(x, names) for x in ref[1:])] if isinstance(ref, list) and ref
                else _canon(ref, names) for ref in node]
    return _canon(node, names)  # {"args": ..., "kwargs": ...}: the tensors name their layer in keras_history


def _canon_refs(refs, names: _Names):
    """input_layers / output_layers: a structure of [layer name, node index, tensor index] leaves."""
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [names(refs[0]), _canon(refs[1], names), _canon(refs[2], names)]
    if isinstance(refs, dict):  # keys are the model's input/output keys, not layer names
        return {k: _canon_refs(v, names) for k, v in refs.items()}
    if isinstance(refs, (list, tuple)):
        return [_canon_refs(v, names) for v in refs]
    return _canon(refs, names)


def _serialized(model) -> dict:
    import keras

    return keras.saving.serialize_keras_object(model)


def canonical_config(model) -> dict:
    """The model's serialized config with every layer (and model) name replaced by its position."""
    return _canon(_serialized(model), _Names())


def _json_default(obj):
    # tagged, so that a non-JSON value can never serialize like a string or number of another config
    return {"__non_json__": f"{type(obj).__module__}.{type(obj).__qualname__}", "str": str(obj)}


def _config_digest(config) -> str:
    text = json.dumps(config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def architecture_fingerprint(model) -> str:
    """sha256 of the canonical config: the same for the same architecture whatever the names."""
    return _config_digest(canonical_config(model))


def _exact_config_digest(model) -> str:
    """sha256 of the model's exact serialized config, layer names included (the in-process memo key)."""
    return _config_digest(_serialized(model))


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


def retrain_key(model, dataset, recipe: Recipe, inputs: Inputs | None = None) -> str:
    """The cache key of a retraining: architecture, recipe, data, inputs (default: scaled_inputs) and versions."""
    inputs = inputs if inputs is not None else scaled_inputs(model, dataset, recipe)
    payload = {
        "architecture": architecture_fingerprint(model),
        "recipe": dataclasses.asdict(recipe),
        "data": f"{dataset.name}:{dataset.digest}",
        "inputs": inputs.digest(),
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# cache
#
# The cache folder may be writable by others (shared between shards or CI runs, or reached by student
# code), so nothing read from it is trusted unless authenticated: every entry carries an HMAC-SHA256,
# over its key and its content, with a secret key only the grader can read. A forged, foreign, truncated
# or corrupt entry is a miss: the architecture is retrained and the entry rewritten. Nothing under the
# cache folder is opened through a symbolic link: files are opened with O_NOFOLLOW relative to a folder
# itself opened with O_NOFOLLOW, and entries are written to a fresh temporary file (O_EXCL) and renamed.
#
# The secret key: the file $GRADER_CACHE_KEY_FILE, or <cache root>/private/cache-hmac.key in a folder of
# mode 0700. It is created on first use (32 random bytes, mode 0600, O_CREAT|O_EXCL|O_NOFOLLOW) and
# must be a regular file of the grader's user, not readable by group or others; the private folder
# must be the grader's user's with mode 0700. When no trustworthy key can be had the cache is not used
# (a warning says why): results are computed, never taken from or written to the cache.

KEY_ENV = "GRADER_CACHE_KEY_FILE"
KEY_DIR = "private"
KEY_NAME = "cache-hmac.key"
KEY_BYTES = 32
ENTRY_FORMAT = "cnn-autograder/retrain-cache/2"
MAX_ENTRY_BYTES = 1 << 20
LOCK_TIMEOUT = 300.0  # seconds to wait for another grader's training before training anyway

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in the cache must not block the grader


class CacheKeyError(OSError):
    """No trustworthy secret key for the cache: the cache is not used."""


def cache_root(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.path.expanduser("~")) / ".cache" / "cnn-autograder"


def _cache_file(cache_dir, key: str) -> Path:
    return cache_root(cache_dir) / "retrain" / f"{key}.json"


def key_file(cache_dir=None) -> Path:
    """Where the cache's secret key lives: $GRADER_CACHE_KEY_FILE or <cache root>/private/cache-hmac.key."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    return cache_root(cache_dir) / KEY_DIR / KEY_NAME


def _open_dir(path: Path, create: bool = False) -> int:
    """A descriptor of the folder path; its last component must not be a symbolic link."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
    return os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)


def _open_private_dir(path: Path) -> int:
    """Descriptor of a folder of mode 0700 owned by the grader's user (created so if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError as exc:
        raise CacheKeyError(f"cannot open the key folder {path} ({exc})") from exc
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise CacheKeyError(f"the key folder {path} must be a folder of user {os.geteuid()} with mode 0700 "
                            f"(it is user {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
    return fd


def _read_or_create_key(dir_fd: int, name: str, shown: Path) -> bytes:
    """The key in file name of folder dir_fd: created on first use, checked and read otherwise."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            secret = secrets.token_bytes(KEY_BYTES)
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600,
                             dir_fd=dir_fd)
            except FileExistsError:  # another grader created it just now: read theirs
                if time.monotonic() > deadline:
                    raise CacheKeyError(f"the key file {shown} keeps appearing and disappearing") from None
                continue
            except OSError as exc:
                raise CacheKeyError(f"cannot create the key file {shown} ({exc})") from exc
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                os.write(fd, secret)
                os.fsync(fd)
            finally:
                os.close(fd)
            return secret
        except OSError as exc:  # ELOOP: a symbolic link; or unreadable
            raise CacheKeyError(f"cannot open the key file {shown} ({exc})") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise CacheKeyError(f"the key file {shown} must be a regular file of user {os.geteuid()} with "
                                    f"mode 0600 (it is user {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
            data = os.read(fd, KEY_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) == KEY_BYTES:
            return data
        if len(data) > KEY_BYTES or time.monotonic() > deadline:  # short: maybe being written by another grader
            raise CacheKeyError(f"the key file {shown} does not hold {KEY_BYTES} bytes")
        time.sleep(0.05)


def _secret_key(cache_dir=None) -> bytes:
    """The cache's secret key (see key_file), created on first use. Raises CacheKeyError."""
    path = key_file(cache_dir)
    if os.environ.get(KEY_ENV):  # an operator's choice of file: its folder is theirs to protect
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            dir_fd = os.open(path.parent, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            raise CacheKeyError(f"cannot open the folder of the key file {path} ({exc})") from exc
    else:
        try:
            dir_fd = _open_private_dir(path.parent)
        except CacheKeyError:
            raise
        except OSError as exc:
            raise CacheKeyError(f"cannot create the key folder {path.parent} ({exc})") from exc
    try:
        return _read_or_create_key(dir_fd, path.name, path)
    finally:
        os.close(dir_fd)


def _canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _entry_mac(secret: bytes, key: str, entry: dict) -> str:
    message = b"\0".join([ENTRY_FORMAT.encode(), key.encode(), _canonical_json(entry)])
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _sign_entry(secret: bytes, key: str, entry: dict) -> str:
    entry = {**entry, "key": key}
    return json.dumps({"format": ENTRY_FORMAT, "entry": entry, "hmac": _entry_mac(secret, key, entry)},
                      indent=1, sort_keys=True, allow_nan=False)


def _verify_entry(secret: bytes, key: str, text: str) -> dict | None:
    """The entry if text is one signed with secret for key and well formed, else None."""
    try:
        signed = json.loads(text)
        entry, mac = signed["entry"], signed["hmac"]
        if signed.get("format") != ENTRY_FORMAT or not isinstance(entry, dict) or not isinstance(mac, str):
            return None
        if not hmac.compare_digest(_entry_mac(secret, key, entry), mac) or entry.get("key") != key:
            return None
        accuracy, train_seconds = entry["accuracy"], entry.get("train_seconds", 0.0)
        for value in (accuracy, train_seconds):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return None
        if not 0.0 <= accuracy <= 1.0 or train_seconds < 0:
            return None
        return {**entry, "accuracy": float(accuracy), "train_seconds": float(train_seconds)}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def _read_cache(path: Path, key: str, secret: bytes) -> dict | None:
    """The authenticated entry at path, or None (missing, unreadable, a link, not a file, forged, corrupt)."""
    try:
        dir_fd = _open_dir(path.parent)
    except OSError:
        return None
    try:
        fd = os.open(path.name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
            return None
        data = os.read(fd, MAX_ENTRY_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _verify_entry(secret, key, text)


def _write_cache(path: Path, key: str, secret: bytes, entry: dict) -> None:
    """Write the signed entry atomically: a new temporary file (O_EXCL, no link followed), then a rename
    that replaces whatever is at path (a planted link is replaced, not followed)."""
    text = _sign_entry(secret, key, entry).encode()
    dir_fd = _open_dir(path.parent, create=True)
    try:
        tmp = f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _locked(path: Path, timeout: float = LOCK_TIMEOUT):
    """Exclusive lock beside a cache entry, so that concurrent graders train once.

    A no-op where fcntl, the folder or a regular lock file is unavailable (a link planted at the lock path
    is not followed), and given up after timeout seconds (a lock held forever only costs a training).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = -1
    try:
        dir_fd = _open_dir(path.parent, create=True)
        try:
            fd = os.open(path.with_suffix(".lock").name, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC,
                         0o644, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            fd = -1
    except OSError:
        if fd >= 0:
            os.close(fd)
        fd = -1
    if fd < 0:
        yield
        return
    locked = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            except OSError:
                break
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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


def recipe_indices(dataset, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """(training, test) indices into the dataset of the images the recipe uses, in the order it uses them."""
    return (_stratified(dataset.y_train, recipe.train_subset, recipe.seed),
            np.sort(_stratified(dataset.y_test, recipe.test_subset, recipe.seed + 1)))


def scaled_inputs(model, dataset, recipe: Recipe) -> Inputs:
    """The recipe's images scaled to [0, 1] (recipe.scale), with a channel axis where the model wants one."""
    train, test = recipe_indices(dataset, recipe)
    shape = _model_input_shape(model)
    return Inputs(prepare_inputs(dataset.x_train[train], shape, recipe.scale),
                  prepare_inputs(dataset.x_test[test], shape, recipe.scale))


def _train_and_evaluate(model, dataset, recipe: Recipe, inputs: Inputs) -> float:
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(recipe.seed)
    clone = keras.models.clone_model(model, clone_function=_clone_function(recipe), recursive=True)
    if recipe.optimizer != "adam":
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    clone.compile(optimizer=keras.optimizers.Adam(learning_rate=recipe.learning_rate),
                  loss="sparse_categorical_crossentropy", steps_per_execution=STEPS_PER_EXECUTION)
    train, test = recipe_indices(dataset, recipe)
    y = dataset.y_train[train].astype(np.int32)
    clone.fit(inputs.x_train, y, batch_size=recipe.batch_size, epochs=recipe.epochs, shuffle=True, verbose=0)
    clone.steps_per_execution = 1  # predicting a few large batches gains nothing from it
    return _accuracy(clone, inputs.x_test, dataset.y_test[test], recipe.eval_batch_size)


def retrain(model, dataset, recipe: Recipe, cache_dir=None, use_cache: bool = True,
            inputs: Inputs | None = None) -> RetrainResult:
    """Train a fresh copy of model's architecture with recipe, on inputs (default: the recipe's images scaled
    to [0, 1]); cached by retrain_key (authenticated entries)."""
    start = time.perf_counter()
    inputs = inputs if inputs is not None else scaled_inputs(model, dataset, recipe)
    key = retrain_key(model, dataset, recipe, inputs)
    path = _cache_file(cache_dir, key)
    secret: bytes | None = None
    if use_cache:
        try:
            secret = _secret_key(cache_dir)
        except OSError as exc:  # CacheKeyError, or the cache folder cannot be made: train, uncached
            warnings.warn(f"the retraining cache is not used: {exc}", RuntimeWarning, stacklevel=2)
    if secret is not None and (entry := _read_cache(path, key, secret)) is not None:
        return RetrainResult(entry["accuracy"], True, 0.0, entry["train_seconds"], key)
    with _locked(path) if secret is not None else contextlib.nullcontext():
        if secret is not None and (entry := _read_cache(path, key, secret)) is not None:  # another grader just trained it
            return RetrainResult(entry["accuracy"], True, time.perf_counter() - start, entry["train_seconds"], key)
        t0 = time.perf_counter()
        accuracy = _train_and_evaluate(model, dataset, recipe, inputs)
        seconds = time.perf_counter() - t0
        if secret is not None:
            entry = {"accuracy": accuracy, "train_seconds": round(seconds, 2), "recipe": dataclasses.asdict(recipe),
                     "data": f"{dataset.name}:{dataset.digest}", "versions": _versions(),
                     "architecture": architecture_fingerprint(model), "created": time.time()}
            try:
                _write_cache(path, key, secret, entry)
            except (OSError, ValueError):
                pass  # a read-only (or occupied) cache only costs time
    return RetrainResult(accuracy, False, time.perf_counter() - start, seconds, key)


def retrain_and_evaluate(model, dataset, recipe: Recipe, cache_dir=None) -> float:
    """Test accuracy of model's architecture trained from scratch with the grader's recipe."""
    return retrain(model, dataset, recipe, cache_dir).accuracy


# ---------------------------------------------------------------------------------------------
# submitted weights

def _digest_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.shape}{a.dtype.str}".encode())
    h.update(a.data)
    return h.hexdigest()


def _weights_key(model, weights: bytes, x: np.ndarray, y: np.ndarray, batch_size: int) -> str:
    """The exact model config (layer names included), the weights file bytes, the inputs, the labels and the
    TensorFlow/Keras versions."""
    return hashlib.sha256(_canonical_json({
        "config": _exact_config_digest(model), "weights": hashlib.sha256(weights).hexdigest(),
        "x": _digest_array(x), "y": _digest_array(y), "batch_size": int(batch_size),
        "versions": _versions()})).hexdigest()


def _usable_secret(cache_dir) -> bytes | None:
    try:
        return _secret_key(cache_dir)
    except OSError as exc:  # CacheKeyError, or the cache folder cannot be made: compute, uncached
        warnings.warn(f"the grader's cache is not used: {exc}", RuntimeWarning, stacklevel=3)
        return None


def evaluate_weights(model, weights_path, x: np.ndarray, y: np.ndarray, batch_size: int = 500,
                     cache_dir=None) -> float:
    """Accuracy of model with the weights file loaded, on inputs x (already preprocessed), labels y.

    Cached like retraining (authenticated entries, under <cache root>/weights) by the exact model config
    (not only its fingerprint), the sha256 of the weights file bytes, the digests of x and y and the
    versions: the same submission graded again is not evaluated again. The bytes that were hashed are the
    bytes loaded: the file is read once and loaded from a private copy. Raises whatever keras raises when
    the file does not fit the architecture; the caller words the message.
    """
    weights_path = Path(weights_path)
    weights = weights_path.read_bytes()
    y = np.asarray(y)
    key = _weights_key(model, weights, x, y, batch_size)
    path = cache_root(cache_dir) / "weights" / f"{key}.json"
    secret = _usable_secret(cache_dir)
    if secret is not None and (entry := _read_cache(path, key, secret)) is not None:
        return entry["accuracy"]
    began = time.perf_counter()
    # the private copy sits beside the file, in the submission's locked folder: removed with it even if the
    # worker is killed
    with tempfile.TemporaryDirectory(prefix="grader-weights-", dir=weights_path.parent) as tmp:
        private = Path(tmp) / weights_path.name
        private.write_bytes(weights)
        check_hdf5_weights(private, 4 * model.count_params() + 65_536)  # weights and an optimizer's state
        model.load_weights(str(private))
    accuracy = _accuracy(model, x, y, batch_size)
    if secret is not None:
        entry = {"accuracy": accuracy, "train_seconds": round(time.perf_counter() - began, 2),
                 "kind": "submitted weights", "versions": _versions(), "created": time.time()}
        with contextlib.suppress(OSError, ValueError):  # a read-only (or occupied) cache only costs time
            _write_cache(path, key, secret, entry)
    return accuracy


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


def architecture_cost(model) -> tuple[int, int]:
    """(parameters, multiply-adds per example) of a built Keras model, from its layers' kernels and output shapes.

    Every layer with a `kernel` (Dense, the convolutions) costs kernel.size multiply-adds per output position;
    nested models are counted through their layers. Cheap: nothing is run.
    """
    macs = 0
    for layer in _leaf_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        positions = 1
        for size in tuple(layer.output.shape)[1:-1]:
            positions *= int(size or 1)
        macs += int(np.prod(kernel.shape)) * positions
    return int(model.count_params()), macs


def _leaf_layers(model) -> list:
    leaves = []
    for layer in getattr(model, "layers", []):
        leaves += _leaf_layers(layer) if getattr(layer, "layers", None) else [layer]
    return leaves
