"""The grader's checks on a .keras file from the student process, before Keras reads anything."""
from __future__ import annotations

import json
import zipfile

import pytest

from grader.errors import ModelRefused, StudentError
from grader.sandbox.model_transfer import MAX_CONFIG_BYTES, check_keras_file


def keras_file(path, config: bytes, extra: dict[str, bytes] | None = None):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def test_a_zip_bomb_config_is_refused_before_it_is_unpacked(tmp_path):
    bomb = keras_file(tmp_path / "bomb.keras", b" " * (MAX_CONFIG_BYTES + 1))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(StudentError, match="larger than the grader accepts"):
        check_keras_file(bomb, "build_lenet5")


def test_a_deeply_nested_config_is_refused(tmp_path):
    deep = keras_file(tmp_path / "deep.keras", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(StudentError, match=r"not arrive as a valid \.keras file"):
        check_keras_file(deep, "build_lenet5")


@pytest.mark.parametrize("layer, message", [
    ({"class_name": "Lambda", "module": "keras.layers"}, "has a Lambda layer. The grader accepts only"),
    ({"class_name": "Evil", "module": "student"}, "has a layer of its own class `Evil`. The grader accepts only"),
    ({"class_name": "MyLayer", "module": None, "registered_name": "MyLayer"}, "own class `MyLayer`")])
def test_code_in_a_model_is_refused(tmp_path, layer, message):
    config = {"class_name": "Sequential", "module": "keras", "config": {"layers": [layer]}}
    with pytest.raises(ModelRefused, match=message):
        check_keras_file(keras_file(tmp_path / "m.keras", json.dumps(config).encode()), "build_vgg")


@pytest.mark.parametrize("base", ["keras.Model", "keras.Sequential"])
def test_a_subclassed_model_is_refused_in_the_graders_words(tmp_path, base):
    """What Keras writes for a subclass of keras.Model or keras.Sequential defined in a notebook: the grader
    states its rule and what to write instead, never Keras's "Could not locate class"."""
    config = {"class_name": "LeNet", "module": None, "registered_name": "LeNet", "config": {"layers": []}}
    with pytest.raises(ModelRefused) as refused:
        check_keras_file(keras_file(tmp_path / "m.keras", json.dumps(config).encode()), "build_lenet5")
    text = str(refused.value)
    assert "`build_lenet5` returns a model of its own class `LeNet`" in text
    assert "keras.Sequential([...]) or keras.Model(inputs, outputs)" in text
    assert "register_keras_serializable" not in text and "Could not locate" not in text


def test_an_hdf5_bomb_is_refused_before_keras_reads_it(tmp_path):
    import h5py

    from grader.config import load_assignment
    from grader.sandbox.model_transfer import WeightsRefused, check_hdf5_weights
    keras_models = load_assignment("keras_models")
    check_hdf5_weights(keras_models.folder / "lenet5.weights.h5", 4 * 61_706 + 65_536)  # the real weights pass
    bomb = tmp_path / "lenet5.weights.h5"
    with h5py.File(bomb, "w") as f:
        f.create_dataset("layers/conv2d/vars/0", shape=(805_306_368,), dtype="float32", chunks=(1 << 20,),
                         compression="gzip", fillvalue=1.0)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(WeightsRefused, match="declares more than"):
        check_hdf5_weights(bomb, 4 * 61_706 + 65_536)
    linked = tmp_path / "linked.weights.h5"
    with h5py.File(linked, "w") as f:
        f["layers"] = h5py.ExternalLink(str(keras_models.folder / "lenet5.weights.h5"), "/layers")
    with pytest.raises(WeightsRefused, match="ExternalLink"):
        check_hdf5_weights(linked, 10**9)
