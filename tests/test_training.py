"""grader.course.training: architecture fingerprints, retraining cache, determinism. Tiny models and data."""
import dataclasses
import json
import os
import secrets
import stat

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


def rescaling_model():
    """tiny_model with its own Rescaling(1/255): it expects inputs in 0..255."""
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def test_retraining_follows_the_inputs_it_is_given(tmp_path):
    """A model that rescales its inputs itself learns when it is trained on the student's 0..255 inputs, and
    the cache keys the inputs: the same architecture on other inputs is another entry."""
    data = tiny_dataset()
    train, test = training.recipe_indices(data, RECIPE)
    assert len(train) == RECIPE.train_subset and len(test) == RECIPE.test_subset
    raw = training.Inputs(data.x_train[train, ..., None].astype(np.float32),
                          data.x_test[test, ..., None].astype(np.float32))
    own = training.retrain(rescaling_model(), data, RECIPE, cache_dir=tmp_path, inputs=raw)
    scaled = training.retrain(rescaling_model(), data, RECIPE, cache_dir=tmp_path)
    assert own.key != scaled.key and not scaled.cached
    assert own.accuracy >= 0.9, own
    plain = training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path,
                             inputs=training.scaled_inputs(tiny_model(), data, RECIPE))
    assert plain.key == training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path).key  # the same inputs


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
    assert entry.is_file() and json.loads(entry.read_text())["entry"]["accuracy"] == first.accuracy
    assert not list(entry.parent.glob("*.tmp")) and not list(entry.parent.glob(".*.tmp"))  # atomic write: no temporary file

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
    assert not result.cached and json.loads(path.read_text())["entry"]["accuracy"] == result.accuracy


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
    other = tiny_model()  # the same architecture with other auto-generated names: evaluated again, same result
    assert training.evaluate_weights(other, path, x, data.y_test) == accuracy
    with pytest.raises(Exception):
        training.evaluate_weights(tiny_model(filters=5), path, x, data.y_test)


# ---------------------------------------------------------------------------------------------
# fingerprints: only the layer names are normalised


def lenet(activation, conv_name=None, dense_name=None, sequential=False, fixed_names=False):
    """A LeNet-like tiny model whose hidden layers use activation; optionally named after an activation.

    fixed_names: name every other layer too, so that two builds have exactly the same config.
    """
    def other(name):
        return name if fixed_names else None

    stack = [keras.Input(shape=(8, 8, 1), name=other("pixels")),
             layers.Conv2D(4, 3, activation=activation, name=conv_name),
             layers.AveragePooling2D(2, name=other("pool")), layers.Flatten(name=other("flat")),
             layers.Dense(8, activation=activation, name=dense_name),
             layers.Dense(3, activation="softmax", name=other("probs"))]
    if sequential:
        return keras.Sequential(stack, name=other("lenet"))
    x = inputs = stack[0]
    for layer in stack[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name=other("lenet"))


@pytest.mark.parametrize("sequential", [False, True])
def test_fingerprint_layer_named_after_an_activation_does_not_collide(sequential):
    fingerprint = training.architecture_fingerprint
    # each named after its activation: the old fingerprint replaced the activations by positions too
    assert (fingerprint(lenet("relu", conv_name="relu", sequential=sequential))
            != fingerprint(lenet("sigmoid", conv_name="sigmoid", sequential=sequential)))
    assert (fingerprint(lenet("relu", dense_name="relu", sequential=sequential))
            != fingerprint(lenet("sigmoid", dense_name="sigmoid", sequential=sequential)))
    relu = fingerprint(lenet("relu", sequential=sequential))
    assert fingerprint(lenet("sigmoid", conv_name="relu", sequential=sequential)) != relu
    assert fingerprint(lenet("sigmoid", dense_name="relu", sequential=sequential)) != relu
    assert fingerprint(lenet("sigmoid", conv_name="relu", dense_name="softmax", sequential=sequential)) != relu
    # and a ReLU model whose layers are named after activations is still the ReLU architecture
    assert fingerprint(lenet("relu", conv_name="sigmoid", dense_name="relu", sequential=sequential)) == relu
    canonical = json.dumps(training.canonical_config(lenet("sigmoid", conv_name="relu", sequential=sequential)))
    assert '"activation": "sigmoid"' in canonical and '"relu"' not in canonical


def test_fingerprint_keeps_strings_that_equal_a_layer_name():
    # a layer named "same" or "valid" must not turn another layer's padding into a position
    def model(padding, name):
        inputs = keras.Input(shape=(8, 8, 1))
        x = layers.Conv2D(4, 3, padding=padding, name=name)(inputs)
        x = layers.Conv2D(4, 3, padding="same")(x)
        return keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(x)))

    assert (training.architecture_fingerprint(model("valid", "same"))
            != training.architecture_fingerprint(model("same", "valid")))


def test_fingerprint_normalises_references_of_functional_graphs():
    def branchy(names):
        inputs = keras.Input(shape=(8, 8, 1), name=names[0])
        shared = layers.Dense(4, name=names[1])
        flat = layers.Dense(4, name=names[8])(layers.Flatten(name=names[2])(inputs))
        a, b = shared(flat), shared(shared(flat))  # a layer called twice: node indices 0 and 1
        inner = keras.Sequential([layers.Dense(4, activation="relu", name=names[3])], name=names[4])
        out = layers.Dense(3, activation="softmax", name=names[5])(layers.Add(name=names[6])([inner(a), b]))
        return keras.Model(inputs, [out, a], name=names[7])

    first = branchy([f"n{i}" for i in range(9)])
    renamed = branchy(["relu", "x", "flatten", "sigmoid", "inner", "probs", "add_it", "m", "linear"])
    assert training.architecture_fingerprint(first) == training.architecture_fingerprint(renamed)
    canonical = json.dumps(training.canonical_config(renamed))
    for name in ("x", "flatten", "sigmoid", "inner", "probs", "add_it"):  # "relu", "linear": also activations
        assert f'"{name}"' not in canonical, name


# ---------------------------------------------------------------------------------------------
# the cache: authenticated entries, no link followed


@pytest.fixture(autouse=True)
def no_key_file_env(monkeypatch):
    monkeypatch.delenv(training.KEY_ENV, raising=False)


@pytest.fixture
def fake_training(monkeypatch):
    """Replace the training by a counter returning 0.5: the cache tests need no real training."""
    calls = []

    def train(model, dataset, recipe, inputs):
        calls.append(recipe)
        return 0.5

    monkeypatch.setattr(training, "_train_and_evaluate", train)
    return calls


def forged(key: str, accuracy=0.99, secret=None) -> str:
    entry = {"accuracy": accuracy, "train_seconds": 1.0, "created": 0}
    return training._sign_entry(secret if secret is not None else secrets.token_bytes(32), key, entry)


def assert_valid_entry(tmp_path, path, key, accuracy=0.5):
    secret = training._secret_key(tmp_path)
    assert path.is_file() and not path.is_symlink()
    entry = training._read_cache(path, key, secret)
    assert entry is not None and entry["accuracy"] == accuracy and entry["key"] == key


def entry_path(tmp_path, model, data):
    key = training.retrain_key(model, data, RECIPE)
    path = tmp_path / "retrain" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return key, path


def test_key_file_is_private_and_stable(tmp_path, fake_training):
    training.retrain(tiny_model(), tiny_dataset(), RECIPE, cache_dir=tmp_path)
    path = training.key_file(tmp_path)
    assert path == tmp_path / "private" / "cache-hmac.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == 32
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert training._secret_key(tmp_path) == path.read_bytes()
    assert training.retrain(tiny_model(), tiny_dataset(), RECIPE, cache_dir=tmp_path).cached


def test_key_file_from_environment(tmp_path, monkeypatch, fake_training):
    key_path = tmp_path / "keys" / "grader.key"
    monkeypatch.setenv(training.KEY_ENV, str(key_path))
    training.retrain(tiny_model(), tiny_dataset(), RECIPE, cache_dir=tmp_path / "cache")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and key_path.stat().st_size == 32
    assert not (tmp_path / "cache" / "private").exists()
    assert training.retrain(tiny_model(), tiny_dataset(), RECIPE, cache_dir=tmp_path / "cache").cached


@pytest.mark.parametrize("entry", ["unsigned", "wrong-hmac", "tampered", "other-key", "for-another-key"])
def test_forged_entry_is_ignored_and_overwritten(tmp_path, fake_training, entry):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    secret = training._secret_key(tmp_path)  # the grader's key exists: the forger does not know it
    if entry == "unsigned":  # the old format: valid JSON, no HMAC
        text = json.dumps({"accuracy": 0.99, "train_seconds": 1.0})
    elif entry == "wrong-hmac":
        signed = json.loads(forged(key, secret=secret))
        signed["hmac"] = "0" * 64
        text = json.dumps(signed)
    elif entry == "tampered":  # a real entry whose accuracy was raised afterwards
        signed = json.loads(forged(key, accuracy=0.3, secret=secret))
        signed["entry"]["accuracy"] = 0.99
        text = json.dumps(signed)
    elif entry == "other-key":  # signed with another key (another grader's, or the student's own)
        text = forged(key, secret=secrets.token_bytes(32))
    else:  # a genuine entry of another architecture, copied over this one's file name
        text = forged("0" * 64, secret=secret)
    path.write_text(text)
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path)
    assert not result.cached and result.accuracy == 0.5 and len(fake_training) == 1
    assert_valid_entry(tmp_path, path, key)
    assert training.retrain(tiny_model(), data, RECIPE, cache_dir=tmp_path).cached  # the rewritten entry is valid
    assert len(fake_training) == 1


def test_genuine_entry_is_used(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    path.write_text(forged(key, accuracy=0.75, secret=training._secret_key(tmp_path)))
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path)
    assert result.cached and result.accuracy == 0.75 and not fake_training


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "empty", "binary", "out-of-range", "nan"])
def test_truncated_or_corrupt_entry_is_ignored(tmp_path, fake_training, damage):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    secret = training._secret_key(tmp_path)
    text = forged(key, accuracy=0.75, secret=secret)
    contents = {"truncated": text[: len(text) // 2].encode(), "corrupt": text.replace("0.75", "0.7x").encode(),
                "empty": b"", "binary": b"\xff\xfe\x00" * 10,
                "out-of-range": forged(key, accuracy=1.5, secret=secret).encode(),
                "nan": text.replace("0.75", "NaN").encode()}
    path.write_bytes(contents[damage])
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path)
    assert not result.cached and len(fake_training) == 1
    assert_valid_entry(tmp_path, path, key)


def test_symlink_at_entry_path_is_not_followed(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    outside = tmp_path / "outside.json"
    genuine = forged(key, accuracy=0.99, secret=training._secret_key(tmp_path))
    outside.write_text(genuine)  # even a validly signed entry is not read through a link
    path.symlink_to(outside)
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path)
    assert not result.cached and result.accuracy == 0.5
    assert not path.is_symlink() and outside.read_text() == genuine  # the link was replaced, not written through
    assert_valid_entry(tmp_path, path, key)


def test_symlinked_folder_and_lock_are_not_followed(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    key = training.retrain_key(model, data, RECIPE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "retrain").symlink_to(elsewhere, target_is_directory=True)
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path / "cache")
    assert not result.cached and not list(elsewhere.iterdir())  # nothing written through the linked folder
    # a link planted at the lock path: not followed (the file it names is not created)
    cache = tmp_path / "cache2"
    (cache / "retrain").mkdir(parents=True)
    target = tmp_path / "created-through-the-lock-link"
    (cache / "retrain" / f"{key}.lock").symlink_to(target)
    result = training.retrain(model, data, RECIPE, cache_dir=cache)
    assert not result.cached and not target.exists()
    assert_valid_entry(cache, cache / "retrain" / f"{key}.json", key)


def test_fifo_at_entry_path_does_not_block(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    os.mkfifo(path)
    result = training.retrain(model, data, RECIPE, cache_dir=tmp_path)
    assert not result.cached
    assert_valid_entry(tmp_path, path, key)


def plant_attacker_key(tmp_path):
    attacker = tmp_path / "attacker.key"
    attacker.write_bytes(b"k" * 32)
    attacker.chmod(0o600)
    return attacker


def assert_uncached(model, data, cache_dir, fake_training, match):
    for _ in range(2):  # neither read nor written
        with pytest.warns(RuntimeWarning, match=match):
            result = training.retrain(model, data, RECIPE, cache_dir=cache_dir)
        assert not result.cached
    assert len(fake_training) == 2


def test_symlink_at_key_path_is_not_followed(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    key, path = entry_path(tmp_path, model, data)
    attacker = plant_attacker_key(tmp_path)
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "private" / "cache-hmac.key").symlink_to(attacker)
    path.write_text(forged(key, secret=attacker.read_bytes()))  # signed with the key the link points to
    assert_uncached(model, data, tmp_path, fake_training, "key file")
    assert attacker.read_bytes() == b"k" * 32
    assert json.loads(path.read_text())["entry"]["accuracy"] == 0.99  # untouched: no key, no write


def test_symlink_at_key_folder_is_not_followed(tmp_path, fake_training):
    data, model = tiny_dataset(), tiny_model()
    elsewhere = tmp_path / "attacker-dir"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "cache-hmac.key").write_bytes(b"k" * 32)
    (elsewhere / "cache-hmac.key").chmod(0o600)
    (tmp_path / "private").symlink_to(elsewhere, target_is_directory=True)
    assert_uncached(model, data, tmp_path, fake_training, "key folder")


def test_symlink_at_key_file_from_environment_is_not_followed(tmp_path, monkeypatch, fake_training):
    attacker = plant_attacker_key(tmp_path)
    link = tmp_path / "keys" / "grader.key"
    link.parent.mkdir()
    link.symlink_to(attacker)
    monkeypatch.setenv(training.KEY_ENV, str(link))
    assert_uncached(tiny_model(), tiny_dataset(), tmp_path / "cache", fake_training, "key file")


@pytest.mark.parametrize("what", ["key-readable", "folder-open", "key-short"])
def test_unsafe_key_is_refused(tmp_path, fake_training, what):
    training._secret_key(tmp_path)
    key_path = training.key_file(tmp_path)
    if what == "key-readable":
        key_path.chmod(0o644)
    elif what == "folder-open":
        key_path.parent.chmod(0o755)
    else:
        key_path.write_bytes(b"short")
    assert_uncached(tiny_model(), tiny_dataset(), tmp_path, fake_training, "key")


# ---------------------------------------------------------------------------------------------
# the evaluate_weights cache: exact config, weights bytes, inputs


def test_evaluate_weights_cache_keys_on_the_exact_config(tmp_path, monkeypatch):
    data = tiny_dataset()
    evaluated = []
    real_accuracy = training._accuracy

    def counting_accuracy(model, x, y, batch_size):
        evaluated.append(model.name)
        return real_accuracy(model, x, y, batch_size)

    monkeypatch.setattr(training, "_accuracy", counting_accuracy)
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    x = training.prepare_inputs(data.x_test, (None, 8, 8, 1), 1 / 255)

    def build():
        return lenet("relu", conv_name="c", dense_name="relu", fixed_names=True)

    relu = build()
    path = tmp_path / "relu.weights.h5"
    relu.save_weights(path)
    first = training.evaluate_weights(build(), path, x, data.y_test)
    assert len(evaluated) == 1
    # the exact same config (explicit names), same file bytes, same inputs: a cache hit (as for a later grader)
    assert training.evaluate_weights(build(), path, x, data.y_test) == first
    assert len(evaluated) == 1
    # the sigmoid model whose dense layer is named "sigmoid" (the old fingerprint's collision): its own result
    sigmoid = lenet("sigmoid", conv_name="c", dense_name="sigmoid", fixed_names=True)
    result = training.evaluate_weights(sigmoid, path, x, data.y_test)
    assert len(evaluated) == 2
    sigmoid.load_weights(path)
    assert result == float(np.mean(np.argmax(sigmoid.predict(x, verbose=0), axis=1) == data.y_test))
    # equal fingerprints, different exact configs (other names): evaluated again, same accuracy
    renamed = lenet("relu", conv_name="conv", dense_name="hidden", fixed_names=True)
    assert training.architecture_fingerprint(renamed) == training.architecture_fingerprint(relu)
    assert training.evaluate_weights(renamed, path, x, data.y_test) == first
    assert len(evaluated) == 3
    # other weights file bytes, or other inputs: evaluated again
    other = tmp_path / "other.weights.h5"
    relu.set_weights([w + 0.01 for w in relu.get_weights()])
    relu.save_weights(other)
    training.evaluate_weights(build(), other, x, data.y_test)
    training.evaluate_weights(build(), path, x[:-1], data.y_test[:-1])
    assert len(evaluated) == 5
    # an entry the grader did not sign is not believed
    for entry in (tmp_path / "cache" / "weights").glob("*.json"):
        signed = json.loads(entry.read_text())
        signed["entry"]["accuracy"] = 1.0
        entry.write_text(json.dumps(signed))
    assert training.evaluate_weights(build(), path, x, data.y_test) == first
    assert len(evaluated) == 6


def test_evaluate_weights_loads_the_bytes_it_hashed(tmp_path, monkeypatch):
    """The file is read once: the memo key's bytes are the bytes loaded, not a later version of the file."""
    data = tiny_dataset()
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    x = training.prepare_inputs(data.x_test, (None, 8, 8, 1), 1 / 255)
    model = lenet("relu", conv_name="c", dense_name="d")
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    loaded = []
    target = lenet("relu", conv_name="c", dense_name="d")
    real_load = target.load_weights

    def load_weights(filepath, *args, **kwargs):
        loaded.append(open(filepath, "rb").read())
        path.write_bytes(b"swapped after hashing")  # the file changes under the grader: no effect
        return real_load(filepath, *args, **kwargs)

    original = path.read_bytes()
    target.load_weights = load_weights
    training.evaluate_weights(target, path, x, data.y_test)
    assert loaded == [original]


def test_an_oversized_architecture_is_refused_before_training():
    import sys

    from grader.config import load_assignment
    sys.path.insert(0, str(load_assignment("keras_models").tests_dir))
    try:
        from keras_models_support import check_retraining_cost
    finally:
        sys.path.pop(0)
    wide = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(256, 5, padding="same"),
                             keras.layers.MaxPooling2D(), keras.layers.Conv2D(512, 5), keras.layers.MaxPooling2D(),
                             keras.layers.Flatten(), keras.layers.Dense(120), keras.layers.Dense(84),
                             keras.layers.Dense(10, activation="softmax")])
    assert training.architecture_cost(wide) == (4_831_102, 334_244_520)
    limits = load_assignment("keras_models").retraining_limits
    with pytest.raises(AssertionError, match="4,831,102 parameters and 334,244,520 multiply-adds"):
        check_retraining_cost(wide, limits, "lenet", "LeNet-5")
