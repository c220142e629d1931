"""grader.course.datasets: resolution order, every accepted format, and clear errors. Tiny generated files."""

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.course.datasets import DatasetError, load_cifar10, load_mnist, resolve_source

SHARED = Path(os.environ.get("GRADER_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


# ---------------------------------------------------------------------------------------------
# fixtures: tiny datasets in each format


def _mnist_arrays(seed=0, n_train=6, n_test=4):
    r = np.random.default_rng(seed)
    return dict(
        x_train=r.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=r.integers(0, 10, n_train).astype(np.uint8),
        x_test=r.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=r.integers(0, 10, n_test).astype(np.uint8),
    )


def _cifar_arrays(seed=0, n_train=6, n_test=4):
    r = np.random.default_rng(seed)
    return dict(
        x_train=r.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=r.integers(0, 10, n_train).astype(np.uint8),
        x_test=r.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=r.integers(0, 10, n_test).astype(np.uint8),
    )


def write_npz(d: Path, name: str, arrays: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / name, **arrays)
    return d / name


def _idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return header + a.astype(np.uint8).tobytes()


def write_idx(d: Path, arrays: dict, gz: bool) -> None:
    d.mkdir(parents=True, exist_ok=True)
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for k, stem in names.items():
        raw = _idx_bytes(arrays[k])
        if gz:
            with gzip.open(d / (stem + ".gz"), "wb") as f:
                f.write(raw)
        else:
            (d / stem).write_bytes(raw)


def _batch_dict(x: np.ndarray, y: np.ndarray, label: bytes) -> dict:
    # the official layout: each row is 1024 red, 1024 green, 1024 blue values, row-major
    return {
        b"batch_label": label,
        b"labels": [int(v) for v in y],
        b"data": x.transpose(0, 3, 1, 2).reshape(len(x), 3072).copy(),
        b"filenames": [b"img_%d.png" % i for i in range(len(x))],
    }


def write_cifar_batches(d: Path, arrays: dict, n_batches: int = 5, py2_names: bool = False) -> Path:
    bd = d / "cifar-10-batches-py"
    bd.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(arrays["x_train"])), n_batches)
    files = [(f"data_batch_{i + 1}", arrays["x_train"][idx], arrays["y_train"][idx]) for i, idx in enumerate(parts)]
    files.append(("test_batch", arrays["x_test"], arrays["y_test"]))
    for fname, x, y in files:
        raw = pickle.dumps(_batch_dict(x, y, b"batch " + fname.encode()), protocol=2)
        if py2_names:  # the module name numpy used when the official files were written
            raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        (bd / fname).write_bytes(raw)
    (bd / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    return bd


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No GRADER_DATA_DIR, and an empty Keras home under tmp_path."""
    monkeypatch.delenv("GRADER_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def assert_same(ds, arrays):
    for k in ("x_train", "y_train", "x_test", "y_test"):
        a = getattr(ds, k)
        assert a.dtype == np.uint8, k
        np.testing.assert_array_equal(a, arrays[k], err_msg=k)


# ---------------------------------------------------------------------------------------------
# resolution order


def test_explicit_dir_beats_env_and_keras_cache(clean_env, monkeypatch):
    tmp = clean_env
    explicit, env, cache = _mnist_arrays(1), _mnist_arrays(2), _mnist_arrays(3)
    write_npz(tmp / "explicit", "mnist.npz", explicit)
    write_npz(tmp / "env", "mnist.npz", env)
    write_npz(tmp / "keras_home" / "datasets", "mnist.npz", cache)
    monkeypatch.setenv("GRADER_DATA_DIR", str(tmp / "env"))

    ds = load_mnist(tmp / "explicit")
    assert_same(ds, explicit)
    assert "explicit" in ds.source and "data_dir" in ds.source

    ds = load_mnist()
    assert_same(ds, env)
    assert "GRADER_DATA_DIR" in ds.source

    monkeypatch.delenv("GRADER_DATA_DIR")
    ds = load_mnist()
    assert_same(ds, cache)
    assert "keras cache" in ds.source


def test_empty_env_var_is_ignored(clean_env, monkeypatch):
    arrays = _mnist_arrays(4)
    write_npz(clean_env / "keras_home" / "datasets", "mnist.npz", arrays)
    monkeypatch.setenv("GRADER_DATA_DIR", "")
    assert_same(load_mnist(), arrays)


def test_keras_cache_cifar_batches_both_layouts(clean_env):
    arrays = _cifar_arrays(5, n_train=10)
    # Keras 3 extracts into cifar-10-batches-py-target/cifar-10-batches-py/
    write_cifar_batches(clean_env / "keras_home" / "datasets" / "cifar-10-batches-py-target", arrays)
    ds = load_cifar10()
    assert_same(ds, arrays)
    assert "keras cache" in ds.source


def test_nothing_local_means_download(clean_env):
    fmt, paths, origin = resolve_source("mnist")
    assert fmt == "download" and paths == () and "download" in origin
    assert resolve_source("cifar10")[0] == "download"


def test_explicit_dir_without_the_dataset_is_an_error(clean_env):
    (clean_env / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"data_dir: no mnist in .*empty.*mnist\.npz"):
        load_mnist(clean_env / "empty")
    with pytest.raises(DatasetError, match="not a directory"):
        load_cifar10(clean_env / "missing")


def test_env_dir_without_the_dataset_is_an_error(clean_env, monkeypatch):
    write_npz(clean_env / "env", "mnist.npz", _mnist_arrays())
    monkeypatch.setenv("GRADER_DATA_DIR", str(clean_env / "env"))
    with pytest.raises(DatasetError, match=r"GRADER_DATA_DIR: no cifar10 in .*cifar-10-batches-py"):
        load_cifar10()


# ---------------------------------------------------------------------------------------------
# formats


def test_mnist_npz_and_digest(clean_env):
    arrays = _mnist_arrays(6)
    write_npz(clean_env / "a", "mnist.npz", arrays)
    write_npz(clean_env / "b", "mnist.npz", arrays)
    write_npz(clean_env / "c", "mnist.npz", _mnist_arrays(7))
    a, b, c = (load_mnist(clean_env / n) for n in "abc")
    assert_same(a, arrays)
    assert a.name == "mnist"
    assert a.digest == b.digest != c.digest
    assert len(a.digest) == 16
    assert load_mnist(clean_env / "a") is a  # cached per process
    with pytest.raises(ValueError):
        a.x_train[0, 0, 0] = 1  # the cached arrays are read-only
    with pytest.raises(AttributeError):
        a.source = "x"  # frozen


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_idx(clean_env, gz):
    arrays = _mnist_arrays(8)
    write_idx(clean_env / "idx", arrays, gz)
    ds = load_mnist(clean_env / "idx")
    assert_same(ds, arrays)
    assert "IDX" in ds.source


def test_mnist_npz_preferred_over_idx_and_same_digest(clean_env):
    arrays = _mnist_arrays(9)
    write_idx(clean_env / "d", arrays, gz=True)
    idx = load_mnist(clean_env / "d")
    write_npz(clean_env / "d", "mnist.npz", arrays)
    npz = load_mnist(clean_env / "d")
    assert "mnist.npz" in npz.source and "IDX" in idx.source
    assert npz.digest == idx.digest


def test_cifar_npz_with_column_labels(clean_env):
    arrays = _cifar_arrays(10)
    stored = dict(arrays, y_train=arrays["y_train"].reshape(-1, 1).astype(np.int64),
                  y_test=arrays["y_test"].reshape(-1, 1))
    write_npz(clean_env / "c", "cifar10.npz", stored)
    ds = load_cifar10(clean_env / "c")
    assert_same(ds, arrays)
    assert ds.y_train.shape == (6,) and ds.y_train.dtype == np.uint8


@pytest.mark.parametrize("py2_names", [False, True], ids=["numpy2", "py2_module_names"])
def test_cifar_official_pickles(clean_env, py2_names):
    arrays = _cifar_arrays(11, n_train=10, n_test=3)
    bd = write_cifar_batches(clean_env / "p", arrays, py2_names=py2_names)
    for given in (clean_env / "p", bd):  # the parent folder or the batches folder itself
        ds = load_cifar10(given)
        assert_same(ds, arrays)
        assert "pickles" in ds.source


def test_cifar_pickle_channel_layout(clean_env):
    # an image that is pure red in the official row layout must be red in the last axis
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[..., 0] = 200
    x[0, 3, 5, 2] = 7  # one blue pixel at row 3, column 5
    arrays = dict(x_train=x, y_train=np.array([3], np.uint8), x_test=x, y_test=np.array([4], np.uint8))
    bd = write_cifar_batches(clean_env / "p", arrays, n_batches=1)
    raw = pickle.loads((bd / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert raw[0, :1024].min() == 200 and raw[0, 2048 + 3 * 32 + 5] == 7
    ds = load_cifar10(clean_env / "p")
    assert ds.x_train[0, 3, 5, 2] == 7 and ds.x_train[0, 0, 0].tolist() == [200, 0, 0]


def test_cifar_20000_and_50000_train_sets_accepted():
    # only consistency is checked, not a fixed size (checked in memory: no 150 MB temp files)
    from grader.course.datasets import _check
    for n in (20000, 50000):
        arrays = dict(x_train=np.broadcast_to(np.uint8(1), (n, 32, 32, 3)), y_train=np.zeros((n, 1), np.uint8),
                      x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, np.uint8))
        out = _check("cifar10", arrays, "cifar10.npz")
        assert out["x_train"].shape == (n, 32, 32, 3) and out["y_train"].shape == (n,)


def test_malicious_pickle_refused(clean_env):
    arrays = _cifar_arrays(12)
    bd = write_cifar_batches(clean_env / "p", arrays)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (bd / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DatasetError, match=r"test_batch: cannot read.*refusing to load"):
        load_cifar10(clean_env / "p")


# ---------------------------------------------------------------------------------------------
# bad files


@pytest.mark.parametrize("key,bad,message", [
    ("x_train", np.zeros((3, 28, 27), np.uint8), r"mnist\.npz \[x_train\]: images have shape \(3, 28, 27\)"),
    ("x_test", np.zeros((4, 28, 28), np.float32), r"mnist\.npz \[x_test\]: images have dtype float32"),
    ("x_train", np.zeros((0, 28, 28), np.uint8), r"\[x_train\]: images have shape \(0, 28, 28\)"),
    ("y_train", np.zeros((6, 2), np.uint8), r"\[y_train\]: labels have shape \(6, 2\)"),
    ("y_test", np.full(4, 10, np.uint8), r"\[y_test\]: labels range 10\.\.10"),
    ("y_test", np.zeros(5, np.uint8), r"mnist\.npz: 4 test images but 5 test labels"),
])
def test_bad_npz_rejected_with_file_name(clean_env, key, bad, message):
    arrays = dict(_mnist_arrays(), **{key: bad})
    write_npz(clean_env / "bad", "mnist.npz", arrays)
    with pytest.raises(DatasetError, match=message):
        load_mnist(clean_env / "bad")


def test_npz_missing_array_and_garbage(clean_env):
    arrays = _mnist_arrays()
    del arrays["y_test"]
    write_npz(clean_env / "m", "mnist.npz", arrays)
    with pytest.raises(DatasetError, match=r"mnist\.npz: missing arrays \['y_test'\]"):
        load_mnist(clean_env / "m")
    (clean_env / "g").mkdir()
    (clean_env / "g" / "cifar10.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"cifar10\.npz: cannot read"):
        load_cifar10(clean_env / "g")


def test_cifar_shapes_checked(clean_env):
    arrays = dict(_cifar_arrays(), x_test=np.zeros((4, 32, 32), np.uint8))
    write_npz(clean_env / "c", "cifar10.npz", arrays)
    with pytest.raises(DatasetError, match=r"cifar10\.npz \[x_test\]: images have shape \(4, 32, 32\), expected \(N, 32, 32, 3\)"):
        load_cifar10(clean_env / "c")


def test_bad_idx_rejected(clean_env):
    arrays = _mnist_arrays()
    write_idx(clean_env / "i", arrays, gz=False)
    f = clean_env / "i" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: IDX header says shape \(4, 28, 28\)"):
        load_mnist(clean_env / "i")
    f.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(DatasetError, match="bad magic number"):
        load_mnist(clean_env / "i")


def test_bad_cifar_batch_rejected(clean_env):
    bd = write_cifar_batches(clean_env / "p", _cifar_arrays())
    (bd / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [1, 2]}))
    with pytest.raises(DatasetError, match=r"data_batch_2: data has shape \(2, 3000\), expected \(N, 3072\)"):
        load_cifar10(clean_env / "p")


def test_no_tensorflow_import(clean_env):
    write_npz(clean_env / "m", "mnist.npz", _mnist_arrays())
    code = ("import sys; from grader.course.datasets import load_mnist; load_mnist(sys.argv[1]); "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", code, str(clean_env / "m")], check=True, env=env, cwd=root)


# ---------------------------------------------------------------------------------------------
# the real shared copies


@pytest.mark.skipif(not (SHARED / "mnist.npz").is_file(), reason="no shared datasets")
def test_shared_datasets_load():
    m = load_mnist(SHARED)
    assert m.x_train.shape == (60000, 28, 28) and m.x_test.shape == (10000, 28, 28)
    assert m.y_train.shape == (60000,) and m.y_test.shape == (10000,)
    assert np.bincount(m.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    c = load_cifar10(SHARED)
    assert c.x_train.shape[1:] == (32, 32, 3) and c.x_train.shape[0] in (20000, 50000)
    assert c.x_test.shape == (10000, 32, 32, 3) and c.y_test.shape == (10000,)
    assert c.x_train.dtype == c.y_train.dtype == np.uint8
    assert np.bincount(c.y_test).tolist() == [1000] * 10
