"""Datasets for the grader: MNIST and CIFAR-10 as uint8 arrays in the Keras layout.

``load_mnist(data_dir)`` and ``load_cifar10(data_dir)`` return a frozen :class:`Dataset`.
Where the data comes from, first match wins:

1. ``data_dir`` (the grader's ``--data-dir``), if given;
2. ``$GRADER_DATA_DIR``, if set and non-empty;
3. the Keras cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``
   (``mnist.npz``, ``cifar-10-batches-py/`` or ``cifar-10-batches-py-target/cifar-10-batches-py/``);
4. a ``keras.datasets`` download (the only network access, and the only TensorFlow import).

An explicit ``data_dir`` or ``$GRADER_DATA_DIR`` is authoritative: when it does not hold the
dataset, loading fails with a message listing what was looked for (no silent download).

Formats, inside a data directory:

* MNIST: ``mnist.npz`` (x_train, y_train, x_test, y_test) or the four IDX files
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (optionally ``.gz``; ``train-images.idx3-ubyte`` spelling too);
* CIFAR-10: ``cifar10.npz`` (x_train, y_train, x_test, y_test) or the official python pickles
  ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the directory itself may be given).
  The pickles are read with an unpickler that only accepts the numpy globals the official files
  use; loading pickles is only ever done on dataset files the TA provides.

Checks: x is (N, 28, 28) / (N, 32, 32, 3) with an integer dtype in 0..255 (returned as uint8),
y is (N,) or (N, 1) with labels 0..9 (returned 1-D uint8), N > 0 and equal for x and y.
The number of images is not fixed: the shared CIFAR-10 copy has 20,000 training images, the
Keras download 50,000. Errors name the file.

Loaded datasets are cached per process, keyed by the resolved files (path, size, mtime); the
arrays are read-only. ``Dataset.digest`` is a short sha256 of the arrays, for cache keys.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from grader.errors import GraderError

__all__ = ["Dataset", "DatasetError", "load_cifar10", "load_mnist", "resolve_source"]

ENV_VAR = "GRADER_DATA_DIR"
log = logging.getLogger(__name__)

_IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_CIFAR_BATCH_DIRS = ("cifar-10-batches-py", os.path.join("cifar-10-batches-py-target", "cifar-10-batches-py"))
_IMAGE_SHAPE = {"mnist": (28, 28), "cifar10": (32, 32, 3)}
_NUM_CLASSES = 10


class DatasetError(GraderError, ValueError):
    """A dataset file is missing or has the wrong format."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    name: str  # "mnist" or "cifar10"
    x_train: np.ndarray  # uint8 (N, 28, 28) or (N, 32, 32, 3), read-only
    y_train: np.ndarray  # uint8 (N,), read-only
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the arrays came from, e.g. "/path/mnist.npz (GRADER_DATA_DIR)"
    digest: str  # short sha256 of the arrays

    def __repr__(self) -> str:
        return (f"Dataset({self.name}: train {self.x_train.shape}, test {self.x_test.shape}, "
                f"digest {self.digest}, from {self.source})")


# ----------------------------------------------------------------------------------------------
# resolution


def keras_cache_dir() -> Path:
    """Where keras.datasets keeps its downloads ($KERAS_HOME/datasets or ~/.keras/datasets)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _find_mnist(d: Path) -> tuple[str, tuple[Path, ...]] | None:
    if (d / "mnist.npz").is_file():
        return "npz", (d / "mnist.npz",)
    found = []
    for key in ("x_train", "y_train", "x_test", "y_test"):
        hit = None
        for stem in _IDX_NAMES[key]:
            for name in (stem, stem + ".gz"):
                if (d / name).is_file():
                    hit = d / name
                    break
            if hit:
                break
        if hit is None:
            return None
        found.append(hit)
    return "idx", tuple(found)


def _find_cifar(d: Path) -> tuple[str, tuple[Path, ...]] | None:
    if (d / "cifar10.npz").is_file():
        return "npz", (d / "cifar10.npz",)
    for sub in ("",) + _CIFAR_BATCH_DIRS:
        bd = d / sub if sub else d
        if (bd / "test_batch").is_file() and (bd / "data_batch_1").is_file():
            return "pickle", (bd,)
    return None


_FINDERS = {"mnist": _find_mnist, "cifar10": _find_cifar}
_LOOKED_FOR = {
    "mnist": "mnist.npz or the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...)",
    "cifar10": "cifar10.npz or cifar-10-batches-py/ (data_batch_1..5, test_batch)",
}


def resolve_source(name: str, data_dir=None) -> tuple[str, tuple[Path, ...], str]:
    """(format, paths, origin) for dataset `name`; format "download" means keras.datasets."""
    finder = _FINDERS[name]
    for directory, origin in ((data_dir, "data_dir"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if directory is None:
            continue
        d = Path(directory).expanduser()
        if not d.is_dir():
            raise DatasetError(f"{origin}: {d} is not a directory")
        hit = finder(d)
        if hit is None:
            raise DatasetError(f"{origin}: no {name} in {d}; looked for {_LOOKED_FOR[name]}")
        return hit[0], hit[1], origin
    cache = keras_cache_dir()
    if cache.is_dir():
        hit = finder(cache)
        if hit is not None:
            return hit[0], hit[1], "keras cache"
    return "download", (), "keras.datasets download"


def _stamp(paths: tuple[Path, ...]) -> tuple:
    out = []
    for p in paths:
        files = sorted(p.iterdir()) if p.is_dir() else [p]
        for f in files:
            st = f.stat()
            out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_mnist(data_dir=None) -> Dataset:
    """MNIST as uint8 arrays: x (N, 28, 28), y (N,). See the module docstring for the sources."""
    return _load("mnist", data_dir)


def load_cifar10(data_dir=None) -> Dataset:
    """CIFAR-10 as uint8 arrays: x (N, 32, 32, 3), y (N,). See the module docstring."""
    return _load("cifar10", data_dir)


def _load(name: str, data_dir) -> Dataset:
    fmt, paths, origin = resolve_source(name, None if data_dir is None else str(data_dir))
    return _load_cached(name, fmt, paths, origin, _stamp(paths))


@functools.lru_cache(maxsize=8)
def _load_cached(name, fmt, paths, origin, _stamp_key) -> Dataset:
    arrays: Mapping[str, np.ndarray | _Tagged]
    if fmt == "download":
        arrays, where = _download(name)
    elif fmt == "npz":
        arrays, where = _read_npz(paths[0]), str(paths[0])
    elif fmt == "idx":
        keys = ("x_train", "y_train", "x_test", "y_test")
        arrays = {k: _Tagged(_read_idx(p), str(p)) for k, p in zip(keys, paths)}
        where = f"IDX files in {paths[0].parent}"
    elif fmt == "pickle":
        arrays, where = _read_cifar_pickles(paths[0]), f"{paths[0]} (python pickles)"
    else:  # pragma: no cover
        raise AssertionError(fmt)
    checked = _check(name, arrays, where)
    h = hashlib.sha256(name.encode())
    for k in ("x_train", "y_train", "x_test", "y_test"):
        a = checked[k]
        h.update(f"{k}{a.shape}{a.dtype.str}".encode())
        h.update(a.data.cast("B"))  # the buffer itself, not a copy (a is C-contiguous)
        a.setflags(write=False)
    source = where if fmt == "download" else f"{where} ({origin})"
    log.info("loaded %s from %s", name, source)
    return Dataset(name=name, source=source, digest=h.hexdigest()[:16], **checked)


# ----------------------------------------------------------------------------------------------
# readers


@dataclasses.dataclass(frozen=True)
class _Tagged:
    """An array plus the file it came from, for error messages."""
    array: np.ndarray
    path: str


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: missing arrays {missing} (has {sorted(f.files)})")
            return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DatasetError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError for object arrays, OSError ...
        raise DatasetError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape)) if shape else 0
    if len(raw) != header + n:
        raise DatasetError(f"{path}: IDX header says shape {shape} ({n} bytes) "
                           f"but the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


class _CifarUnpickler(pickle.Unpickler):
    """Only the numpy globals that the official CIFAR-10 python batches use."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> tuple[_Tagged, _Tagged]:
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:
        raise DatasetError(f"{path}: cannot read as a CIFAR-10 python batch "
                           f"({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DatasetError(f"{path}: expected keys b'data' and b'labels', got {sorted(d)}")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {labels.shape[0] if labels.ndim else 0} labels for "
                           f"{data.shape[0]} images")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return _Tagged(x, str(path)), _Tagged(labels, str(path))


def _read_cifar_pickles(d: Path) -> dict[str, _Tagged]:
    batches = sorted((p for p in d.glob("data_batch_*") if p.name[11:].isdigit()),
                     key=lambda p: int(p.name[11:]))
    numbers = [int(p.name[11:]) for p in batches]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DatasetError(f"{d}: training batches {numbers} are not data_batch_1..N")
    parts = [_read_batch(p) for p in batches]
    xs, ys = [], []
    for x, y in parts:
        xs.append(_check_one("cifar10", "x", x.array, x.path))
        ys.append(_check_one("cifar10", "y", y.array, y.path))
    x_test, y_test = _read_batch(d / "test_batch")
    return {
        "x_train": _Tagged(np.concatenate(xs), str(d / "data_batch_*")),
        "y_train": _Tagged(np.concatenate(ys), str(d / "data_batch_*")),
        "x_test": x_test,
        "y_test": y_test,
    }


def _download(name: str) -> tuple[dict[str, np.ndarray], str]:
    log.info("no local copy of %s: downloading it with keras.datasets", name)
    try:
        import keras  # the only TensorFlow/Keras import of this module
        loader = {"mnist": keras.datasets.mnist, "cifar10": keras.datasets.cifar10}[name]
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as e:
        raise DatasetError(
            f"no local copy of {name} (looked in --data-dir, ${ENV_VAR}, {keras_cache_dir()}) "
            f"and the keras.datasets download failed: {type(e).__name__}: {e}") from None
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return arrays, f"keras.datasets.{name} download (cached in {keras_cache_dir()})"


# ----------------------------------------------------------------------------------------------
# checks


def _check_one(name: str, kind: str, a, where: str) -> np.ndarray:
    a = np.asarray(a)
    if kind == "x":
        want = _IMAGE_SHAPE[name]
        if a.ndim != 1 + len(want) or tuple(a.shape[1:]) != want or a.shape[0] == 0:
            raise DatasetError(f"{where}: images have shape {a.shape}, expected (N, "
                               f"{', '.join(map(str, want))}) with N > 0 for {name}")
        if a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < 0 or a.max() > 255)):
                raise DatasetError(f"{where}: images have dtype {a.dtype}, expected uint8 pixels 0..255")
            a = a.astype(np.uint8)
    else:
        if a.ndim == 2 and a.shape[1] == 1:
            a = a.reshape(-1)
        if a.ndim != 1:
            raise DatasetError(f"{where}: labels have shape {a.shape}, expected (N,) or (N, 1)")
        if not np.issubdtype(a.dtype, np.integer):
            raise DatasetError(f"{where}: labels have dtype {a.dtype}, expected integers 0..9")
        if a.size and (a.min() < 0 or a.max() >= _NUM_CLASSES):
            raise DatasetError(f"{where}: labels range {a.min()}..{a.max()}, expected 0..9")
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a)


def _check(name: str, arrays: Mapping[str, np.ndarray | _Tagged], where: str) -> dict[str, np.ndarray]:
    out = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        item = arrays[key]
        array, file = (item.array, item.path) if isinstance(item, _Tagged) else (item, where)
        out[key] = _check_one(name, key[0], array, f"{file} [{key}]")
    for split in ("train", "test"):
        nx, ny = len(out[f"x_{split}"]), len(out[f"y_{split}"])
        if nx != ny:
            raise DatasetError(f"{where}: {nx} {split} images but {ny} {split} labels")
    return out
