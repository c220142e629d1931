"""Receive a Keras model from the student process: check its .keras file, then load it safely."""
from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

from grader.errors import ModelRefused, StudentError

MAX_MODEL_BYTES = 256 << 20
MAX_CONFIG_BYTES = 8 << 20       # config.json of a .keras file, unpacked
MAX_UNPACKED_BYTES = 1 << 30     # everything in the archive, unpacked (weights included)
MAX_MEMBERS = 64


def _layer_classes(config) -> list[tuple[str, str]]:
    """(module, class_name) of every serialized object in a .keras config, nested ones included."""
    found = []
    if isinstance(config, dict):
        if "class_name" in config:
            found.append((str(config.get("module") or ""), str(config["class_name"])))
        for value in config.values():
            found += _layer_classes(value)
    elif isinstance(config, list):
        for value in config:
            found += _layer_classes(value)
    return found


def _read_config(path: Path) -> object:
    """config.json of a .keras archive, refusing archives that would unpack to more than the caps."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValueError("the archive unpacks to more than the grader accepts")
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise ValueError("config.json is larger than the grader accepts")
        with archive.open(info) as member:
            data = member.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError("config.json is larger than it claims")
    return json.loads(data)


def _check_archive_weights(path: Path, workdir: Path, name: str) -> None:
    """The weights inside a .keras archive pass check_hdf5_weights."""
    target = workdir / "models" / f"{path.stem}.weights.h5"
    try:
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return
            with archive.open("model.weights.h5") as member, open(target, "wb") as out:
                while chunk := member.read(1 << 20):
                    out.write(chunk)
        check_hdf5_weights(target, MAX_MODEL_ELEMENTS)
    except (WeightsRefused, zipfile.BadZipFile, OSError) as exc:
        raise StudentError(f"the model from `{name}` did not arrive as a valid .keras file ({exc})") from None
    finally:
        target.unlink(missing_ok=True)


_MODEL_CLASSES = ("Functional", "Sequential")
_BUILT_IN = "Build it with keras.Sequential([...]) or keras.Model(inputs, outputs) and Keras's built-in layers"


def check_keras_file(path: Path, name: str) -> None:
    """Refuse oversized archives, Lambda layers and classes that are not Keras's own, before anything is
    deserialized. A refusal says the rule and what to write instead, in the grader's own words."""
    try:
        config = _read_config(path)
        classes = _layer_classes(config)
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, MemoryError, EOFError) as exc:
        raise StudentError(f"the model from `{name}` did not arrive as a valid .keras file ({exc})") from None
    rule = ("The grader accepts only models made of Keras's built-in layers, because loading any other class "
            "(or a Lambda) would run your code inside the grader.")
    for index, (module, class_name) in enumerate(classes):
        own = module.split(".")[0] not in ("keras", "builtins") and not (
            not module and class_name.startswith("__") and class_name.endswith("__"))  # Keras's own markers
        if index == 0 and (own or class_name not in _MODEL_CLASSES):
            raise ModelRefused(f"`{name}` returns a model of its own class `{class_name}` (a subclass of keras.Model "
                               f"or keras.Sequential). {rule} {_BUILT_IN}, without a class of your own.")
        if class_name == "Lambda":
            raise ModelRefused(f"the model from `{name}` has a Lambda layer. {rule} Replace it with a built-in "
                               "layer (Rescaling to scale inputs, Activation, Reshape, ...).")
        if own:
            raise ModelRefused(f"the model from `{name}` has a layer of its own class `{class_name}`. {rule} "
                               f"{_BUILT_IN} only.")


MAX_MODEL_ELEMENTS = 64 << 20   # numbers in a transferred model's weights (the course's models hold < 6 M)


class WeightsRefused(ValueError):
    """An HDF5 weights file the grader will not hand to Keras; the message is for the student."""


MAX_HDF5_OBJECTS = 10_000  # groups and datasets in one weights file (a Keras model has a few per layer)


def check_hdf5_weights(path: Path, max_elements: int) -> None:
    """Refuse an HDF5 file that declares more numbers than max_elements, or holds links, external or virtual
    storage: Keras would allocate every declared element before it compares shapes (an 'HDF5 bomb').

    Each object is visited once, however many links lead to it (a file of groups that each link twice to the
    next has 2**40 paths and no cycle), and at most MAX_HDF5_OBJECTS of them."""
    import h5py
    total = 0
    try:
        with h5py.File(path, "r") as weights:
            seen, todo = {weights.id}, [weights]
            while todo:
                group = todo.pop()
                for name in group:
                    link = group.get(name, getlink=True)
                    if not isinstance(link, h5py.HardLink):
                        raise WeightsRefused(f"it holds a {type(link).__name__} ({name}); weights files hold data only")
                    item = group[name]
                    if item.id in seen:
                        continue
                    seen.add(item.id)
                    if len(seen) > MAX_HDF5_OBJECTS:
                        raise WeightsRefused(f"it holds more than {MAX_HDF5_OBJECTS:,} groups and datasets")
                    if isinstance(item, h5py.Group):
                        todo.append(item)
                    elif isinstance(item, h5py.Dataset):
                        if item.is_virtual or item.external:
                            raise WeightsRefused(f"its dataset {item.name} keeps its data outside the file")
                        total += int(item.size)
                        if total > max_elements:
                            raise WeightsRefused(f"it declares more than {max_elements:,} numbers, far more than "
                                                 "the model holds")
    except OSError as exc:
        raise WeightsRefused(f"it is not a readable HDF5 file ({exc})") from None


def _read_regular_file(path: Path, limit: int) -> bytes | None:
    """The bytes of path if it is a regular file (never through a link) of at most limit bytes, else None."""
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def receive_model(path: Path, workdir: Path, name: str):
    """Copy the .keras file the grader asked for out of the sandbox, check it, and load it with safe_mode=True."""
    data = _read_regular_file(path, MAX_MODEL_BYTES)
    if data is None:
        raise StudentError(f"the model from `{name}` could not be received (missing, not a regular file, or over "
                           f"{MAX_MODEL_BYTES >> 20} MB)")
    local = workdir / "models" / path.name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    check_keras_file(local, name)
    _check_archive_weights(local, workdir, name)
    import keras
    try:
        return keras.saving.load_model(local, compile=False, safe_mode=True)
    except Exception as exc:
        raise StudentError(f"the model from `{name}` could not be loaded by the grader: {type(exc).__name__}: "
                           f"{str(exc)[:500]}") from None
