"""grader.course.training: architecture fingerprints, retraining cache, determinism. Tiny models and data."""
import dataclasses
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from grader.course import training  # noqa: E402
from grader.course.datasets import Dataset  # noqa: E402

RECIPE = training.Recipe(name="tiny", dataset="tiny", learning_rate=0.01, batch_size=16, epochs=5, train_subset=96,
                         test_subset=40)


def tiny_dataset(seed=0, n_train=128, n_test=48) -> Dataset:
    """Separable 8x8 grayscale images: class c is a bright row c (3 classes), plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 3, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 8, 8), dtype=np.uint8)
        x[np.arange(n), 2 * y + 1, :] = 250
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    digest = training._digest_array(x_train)[:8] + training._digest_array(x_test)[:8]
    return Dataset("tiny", x_train, y_train, x_test, y_test, source="generated", digest=digest)


def tiny_model(filters=4, names=None, dense_units=8, trainable=True):
    names = names or {}
    inputs = keras.Input(shape=(8, 8, 1), name=names.get("input"))
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=names.get("conv"))(inputs)
    x = layers.MaxPooling2D(2, name=names.get("pool"))(x)
    x = layers.Flatten(name=names.get("flat"))(x)
    x = layers.Dense(dense_units, activation="relu", name=names.get("dense"))(x)
    outputs = layers.Dense(3, activation="softmax", name=names.get("out"))(x)
    model = keras.Model(inputs, outputs, name=names.get("model", "tiny"))
    model.trainable = trainable
    return model


RENAMED = dict(input="pixels", conv="my_conv", pool="my_pool", flat="my_flat", dense="hidden", out="probs",
               model="student_model")


def test_fingerprint_ignores_layer_names():
    assert training.architecture_fingerprint(tiny_model()) == training.architecture_fingerprint(tiny_model(names=RENAMED))
    # auto-generated names differ between two builds in one process (dense, dense_1, ...): same fingerprint
    a, b = tiny_model(), tiny_model()
    assert [l.name for l in a.layers] != [l.name for l in b.layers]
    assert training.architecture_fingerprint(a) == training.architecture_fingerprint(b)


def test_fingerprint_same_for_sequential_with_other_names():
    def seq(prefix):
        return keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, name=prefix + "c"),
                                 layers.Flatten(name=prefix + "f"), layers.Dense(3, activation="softmax",
                                                                                 name=prefix + "d")],
                                name=prefix + "model")
    assert training.architecture_fingerprint(seq("a_")) == training.architecture_fingerprint(seq("b_"))


def test_fingerprint_changes_with_architecture():
    base = training.architecture_fingerprint(tiny_model())
    assert training.architecture_fingerprint(tiny_model(filters=5)) != base
    assert training.architecture_fingerprint(tiny_model(dense_units=9)) != base
    assert training.architecture_fingerprint(tiny_model(trainable=False)) != base


def test_key_changes_with_recipe_and_data():
    model, data = tiny_model(), tiny_dataset()
    key = training.retrain_key(model, data, RECIPE)
    assert training.retrain_key(tiny_model(names=RENAMED), data, RECIPE) == key
    assert training.retrain_key(model, data, dataclasses.replace(RECIPE, epochs=3)) != key
    assert training.retrain_key(model, data, dataclasses.replace(RECIPE, seed=1)) != key
    assert training.retrain_key(model, tiny_dataset(seed=1), RECIPE) != key


def test_retrain_learns_is_deterministic_and_ignores_weights(tmp_path):
    data = tiny_dataset()
    first = training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path, use_cache=False)
    assert first.accuracy >= 0.9, first  # the tiny task is easy
    trained = tiny_model(names=RENAMED)
    trained.set_weights([w * 0 + 3 for w in trained.get_weights()])  # the submitted weights do not matter
    second = training.retrain(trained, data, RECIPE, cache_dir=tmp_path, use_cache=False)
    assert second.accuracy == first.accuracy
    assert not first.cached and not second.cached


def test_frozen_model_does_not_learn(tmp_path):
    with pytest.warns(UserWarning, match="trainable"):
        result = training.retrain(tiny_model(trainable=False), tiny_dataset(), RECIPE, cache_dir=tmp_path,
                                  use_cache=False)
    assert result.accuracy < 0.7


def test_cache_hit_returns_without_training(tmp_path, monkeypatch):
    data = tiny_dataset()
    first = training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path)
    assert not first.cached
    entry = tmp_path / "retrain" / f"{first.key}.json"
    assert entry.is_file() and json.loads(entry.read_text())["accuracy"] == first.accuracy
    assert not list(entry.parent.glob("*.tmp"))  # atomic write left no temporary file

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite a cache hit")

    monkeypatch.setattr(training, "_train_and_evaluate", no_training)
    again = training.retrain(tiny_model(names=RENAMED), data, RECIPE, cache_dir=tmp_path)
    assert again.cached and again.accuracy == first.accuracy and again.key == first.key
    assert training.retrain_and_evaluate(tiny_model(), data, RECIPE, cache_dir=tmp_path) == first.accuracy
    # $GRADER_CACHE_DIR is used when no cache_dir is given
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path))
    assert training.retrain(tiny_model(), data, RECIPE).cached
    # another recipe is a miss
    with pytest.raises(AssertionError, match="cache hit"):
        training.retrain(tiny_model(), data, dataclasses.replace(RECIPE, epochs=1), cache_dir=tmp_path)


def test_corrupt_cache_entry_is_retrained(tmp_path):
    data = tiny_dataset()
    key = training.retrain_key(tiny_model(), data, RECIPE)
    path = tmp_path / "retrain" / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    result = training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path)
    assert not result.cached and json.loads(path.read_text())["accuracy"] == result.accuracy


def test_stratified_subset():
    y = np.repeat(np.arange(10), 50)
    idx = training._stratified(y, 100, seed=0)
    assert len(idx) == len(set(idx)) == 100 and np.bincount(y[idx]).tolist() == [10] * 10
    assert np.array_equal(idx, training._stratified(y, 100, seed=0))
    assert len(training._stratified(y, None, seed=0)) == 500


def test_prepare_inputs_adds_channel_axis():
    x = np.full((2, 8, 8), 255, np.uint8)
    out = training.prepare_inputs(x, (None, 8, 8, 1), 1 / 255)
    assert out.shape == (2, 8, 8, 1) and out.dtype == np.float32 and np.allclose(out, 1.0)
    assert training.prepare_inputs(np.zeros((2, 8, 8, 3), np.uint8), (None, 8, 8, 3), 1 / 255).shape == (2, 8, 8, 3)


def test_evaluate_weights_memoized(tmp_path):
    data = tiny_dataset()
    model = tiny_model()
    path = tmp_path / "tiny.weights.h5"
    model.save_weights(path)
    x = training.prepare_inputs(data.x_test, model.input_shape, 1 / 255)
    accuracy = training.evaluate_weights(tiny_model(), path, x, data.y_test)
    expected = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == data.y_test))
    assert accuracy == expected
    other = tiny_model()  # a memo hit: same architecture, same file bytes, same inputs
    assert training.evaluate_weights(other, path, x, data.y_test) == accuracy
    with pytest.raises(Exception):
        training.evaluate_weights(tiny_model(filters=5), path, x, data.y_test)
