"""Cross-check the cnn_layers reference (the master notebook's solution) against TensorFlow/Keras.

The hidden tests trust the reference, so the reference must agree with what Keras computes:
tf.nn.conv2d (valid, same, explicit padding, strides, dilations), tf.nn.max_pool2d, tf.nn.softmax,
keras.layers.Flatten and GradientTape gradients. TensorFlow's CPU kernels have no conv gradient for
dilation > 1, so those gradients are checked with central differences instead.

TensorFlow is imported once, for the whole module; every case is small.
"""
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from grader.testing.reference import load_reference

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "cnn_layers" / "cnn_layers.ipynb"
TOL = dict(rtol=1e-9, atol=1e-10)


@pytest.fixture(scope="module")
def ref():
    return load_reference(NOTEBOOK)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def tf_padding(padding):
    """The reference's padding argument in tf.nn.conv2d's form."""
    if isinstance(padding, str):
        return padding.upper()
    if np.ndim(padding) == 0:
        padding = (padding, padding)
    if np.ndim(padding) == 1:
        padding = ((padding[0], padding[0]), (padding[1], padding[1]))
    return [[0, 0], list(padding[0]), list(padding[1]), [0, 0]]


def pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def numeric_gradient(f, x, eps=1e-6):
    g = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


# (id, x shape, w shape, stride, padding, dilation): the kinds of cases the hidden tests use
CONV_CASES = [
    ("valid", (2, 6, 6, 3), (3, 3, 3, 4), 1, "valid", 1),
    ("nonsquare", (2, 7, 5, 2), (3, 2, 2, 3), 1, "valid", 1),
    ("batch1_cin1_pad1", (1, 5, 6, 1), (3, 3, 1, 2), 1, 1, 1),
    ("kernel1x1", (2, 4, 5, 3), (1, 1, 3, 4), 1, "valid", 1),
    ("pad1_stride2", (2, 7, 7, 2), (3, 3, 2, 2), 2, 1, 1),
    ("tuple_stride_padding", (2, 8, 6, 2), (3, 2, 2, 3), (2, 1), (1, 2), 1),
    ("explicit_asymmetric", (1, 5, 6, 2), (3, 3, 2, 2), 1, ((0, 2), (1, 0)), 1),
    ("same_stride1", (2, 5, 6, 2), (3, 3, 2, 2), 1, "same", 1),
    ("same_stride2_even", (2, 8, 6, 3), (3, 3, 3, 2), 2, "same", 1),
    ("same_even_kernel", (2, 5, 6, 2), (2, 4, 2, 3), 1, "same", 1),
    ("same_stride3", (1, 10, 9, 2), (4, 3, 2, 2), 3, "same", 1),
    ("dilation2", (2, 8, 7, 2), (3, 3, 2, 2), 1, "valid", 2),
    ("dilation2_same", (1, 6, 7, 2), (3, 2, 2, 2), 1, "same", 2),
    ("dilation_tuple_same_stride2", (2, 7, 8, 2), (2, 3, 2, 2), 2, "same", (2, 1)),
]
CONV_IDS = [c[0] for c in CONV_CASES]


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward_matches_tf(ref, rng, case):
    _, xs, ws, stride, padding, dilation = case
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[-1])
    expected = tf.nn.conv2d(x, w, strides=pair(stride), padding=tf_padding(padding),
                            dilations=pair(dilation)).numpy() + b
    out = ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOL)
    if not isinstance(padding, str) and np.ndim(padding) == 2:
        return
    pad_arg = padding if isinstance(padding, str) else pair(padding)
    for axis in (0, 1):
        p = pad_arg if isinstance(pad_arg, str) else pad_arg[axis]
        assert ref.conv_output_size(xs[1 + axis], ws[axis], p, pair(stride)[axis], pair(dilation)[axis]) == expected.shape[1 + axis]


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward_matches_tf(ref, rng, case):
    _, xs, ws, stride, padding, dilation = case
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[-1])
    out = ref.conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation)
    dout = rng.normal(size=out.shape)
    dx, dw, db = ref.conv2d_backward(dout, x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    if pair(dilation) == (1, 1):
        xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
        with tf.GradientTape() as tape:
            tape.watch([xt, wt, bt])
            y = tf.nn.conv2d(xt, wt, strides=pair(stride), padding=tf_padding(padding)) + bt
            loss = tf.reduce_sum(y * dout)
        gx, gw, gb = (g.numpy() for g in tape.gradient(loss, [xt, wt, bt]))
        np.testing.assert_allclose(dx, gx, **TOL)
        np.testing.assert_allclose(dw, gw, **TOL)
        np.testing.assert_allclose(db, gb, **TOL)
    else:  # no CPU gradient kernel for dilation > 1: central differences of the reference forward
        def loss_x(v):
            return np.sum(ref.conv2d_forward(v, w, b, stride, padding, dilation) * dout)

        def loss_w(v):
            return np.sum(ref.conv2d_forward(x, v, b, stride, padding, dilation) * dout)

        np.testing.assert_allclose(dx, numeric_gradient(loss_x, x), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dw, numeric_gradient(loss_w, w), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(db, dout.sum(axis=(0, 1, 2)), **TOL)


def test_conv2d_forward_float32_matches_tf(ref, rng):
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)
    b = rng.normal(size=2).astype(np.float32)
    expected = tf.nn.conv2d(x, w, strides=1, padding="SAME").numpy() + b
    out = ref.conv2d_forward(x, w, b, padding="same")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# (id, x shape, pool, stride, padding, all negative)
POOL_CASES = [
    ("valid_2x2", (2, 6, 8, 3), 2, None, "valid", False),
    ("nonsquare_pool", (2, 7, 9, 2), (2, 3), None, "valid", False),
    ("pool3_stride2_overlap", (2, 7, 7, 2), 3, 2, "valid", False),
    ("tuple_stride", (1, 6, 7, 3), 2, (1, 2), "valid", False),
    ("batch1_c1_odd", (1, 5, 7, 1), 2, None, "valid", False),
    ("same_all_negative", (2, 7, 6, 3), 3, 2, "same", True),
    ("same_stride2_even", (2, 8, 6, 2), 3, 2, "same", True),
    ("same_nonsquare", (1, 5, 7, 2), (2, 3), (2, 1), "same", False),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_maxpool_matches_tf(ref, rng, case):
    _, xs, pool, stride, padding, negative = case
    x = rng.permutation(np.prod(xs)).reshape(xs) * 0.1 + rng.uniform(0.0, 0.05, size=xs)  # no ties
    if negative:
        x = -x - 0.5
    tf_stride = pair(pool) if stride is None else pair(stride)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.nn.max_pool2d(xt, ksize=pair(pool), strides=tf_stride, padding=padding.upper())
        dout = rng.normal(size=y.shape)
        loss = tf.reduce_sum(y * dout)
    gx = tape.gradient(loss, xt).numpy()
    out = ref.maxpool2d_forward(x, pool_size=pool, stride=stride, padding=padding)
    assert out.shape == tuple(y.shape)
    np.testing.assert_allclose(out, y.numpy(), **TOL)
    dx = ref.maxpool2d_backward(dout, x, pool_size=pool, stride=stride, padding=padding)
    np.testing.assert_allclose(dx, gx, **TOL)


@pytest.mark.parametrize("shape", [(2, 5), (7, 3), (2, 3, 4)], ids=["2x5", "7x3", "3d"])
@pytest.mark.parametrize("offset", [0.0, 1000.0, -1000.0], ids=["plain", "plus1000", "minus1000"])
def test_softmax_matches_tf(ref, rng, shape, offset):
    z = rng.normal(size=shape) * 3 + offset
    out = ref.softmax(z)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, tf.nn.softmax(z, axis=-1).numpy(), rtol=1e-9, atol=1e-12)


def test_softmax_spread_pm1000_matches_tf(ref, rng):
    z = rng.uniform(-1000, 1000, size=(3, 5))
    np.testing.assert_allclose(ref.softmax(z), tf.nn.softmax(z).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape, offset", [((4, 5), 0.0), ((3, 2), 0.0), ((2, 10), 0.0), ((3, 4), 1000.0)],
                         ids=["4x5", "3x2", "2x10", "large"])
def test_cross_entropy_matches_tf(ref, rng, shape, offset):
    z = rng.normal(size=shape) * 5 + offset
    y = rng.integers(0, shape[1], size=shape[0])
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=zt))
    g = tape.gradient(loss, zt).numpy()
    ref_loss, dz = ref.cross_entropy_loss(z, y)
    assert isinstance(ref_loss, float)
    np.testing.assert_allclose(ref_loss, loss.numpy(), rtol=1e-9)
    np.testing.assert_allclose(dz, g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dz, (ref.softmax(z) - np.eye(shape[1])[y]) / shape[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 3), (1, 2, 5, 4), (3, 4, 2, 2)])
def test_flatten_matches_keras(ref, rng, shape):
    x = rng.normal(size=shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = keras.layers.Flatten(dtype="float64")(xt)
        dout = rng.normal(size=y.shape)
        loss = tf.reduce_sum(y * dout)
    np.testing.assert_array_equal(ref.flatten(x), np.asarray(y))
    np.testing.assert_array_equal(ref.flatten_backward(dout, shape), tape.gradient(loss, xt).numpy())


@pytest.mark.parametrize("shapes", [((3, 5), (5, 4)), ((1, 6), (6, 3))], ids=["3x5", "batch1"])
def test_dense_matches_tf(ref, rng, shapes):
    x, w = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    b = rng.normal(size=shapes[1][1])
    xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = tf.matmul(xt, wt) + bt
        dout = rng.normal(size=y.shape)
        loss = tf.reduce_sum(y * dout)
    grads = [g.numpy() for g in tape.gradient(loss, [xt, wt, bt])]
    np.testing.assert_allclose(ref.dense_forward(x, w, b), y.numpy(), **TOL)
    for mine, theirs in zip(ref.dense_backward(dout, x, w, b), grads):
        np.testing.assert_allclose(mine, theirs, **TOL)


def test_activations_and_pooling_match_tf(ref, rng):
    x = rng.normal(size=(2, 4, 5, 3))
    dout = rng.normal(size=x.shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf.nn.relu(xt) * dout)
    np.testing.assert_allclose(ref.relu(x), tf.nn.relu(x).numpy(), **TOL)
    np.testing.assert_allclose(ref.relu_backward(dout, x), tape.gradient(loss, xt).numpy(), **TOL)
    for alpha in (0.01, 0.2):  # TensorFlow keeps alpha as a float32 attribute: relative error ~1e-8
        np.testing.assert_allclose(ref.leaky_relu(x, alpha=alpha), tf.nn.leaky_relu(x, alpha=alpha).numpy(), rtol=1e-7)
    np.testing.assert_allclose(ref.global_avg_pool(x), keras.layers.GlobalAveragePooling2D(dtype="float64")(x).numpy(), **TOL)


@pytest.mark.parametrize("pad", [1, (2, 1), ((0, 1), (2, 0))], ids=["int", "pair", "nested"])
def test_zero_pad_matches_keras(ref, rng, pad):
    x = rng.normal(size=(2, 3, 4, 2))
    np.testing.assert_array_equal(ref.zero_pad(x, pad), keras.layers.ZeroPadding2D(padding=pad, dtype="float64")(x).numpy())


@pytest.mark.parametrize("kh, kw, cin, cout, use_bias",
                         [(11, 11, 3, 96, True), (3, 5, 7, 11, True), (1, 1, 256, 64, False)])
def test_count_conv_params_matches_keras(ref, kh, kw, cin, cout, use_bias):
    layer = keras.layers.Conv2D(cout, (kh, kw), use_bias=use_bias)
    layer.build((None, 32, 32, cin))
    assert ref.count_conv_params(kh, kw, cin, cout, use_bias=use_bias) == layer.count_params()
    if (kh, kw, cin, cout) == (11, 11, 3, 96):
        assert layer.count_params() == 34944
