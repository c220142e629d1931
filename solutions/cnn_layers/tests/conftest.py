"""Shared helpers for the cnn_layers hidden tests.

- ``float64_copy`` / ``float64_copies``: inputs as float64, to compute the reference in float64
  whatever dtype the student gets;
- ``mistakes``: known-mistake variants of the reference (the answers typical bugs give), used by
  grader.testing.checks to tell the student what is probably wrong. Computed in the grader's process.
- ``gradcheck``: central-difference gradients of the student's own forward function, and the
  check of a student's backward against them.

Test modules import the plain helpers with ``from conftest import ...``; the fixtures need no import.
"""
import numpy as np
import pytest

from grader.testing.checks import Mismatch, assert_matches, numeric_gradient


def float64_copy(array):
    """A float64 copy of one array (or scalar, or nested list)."""
    return np.array(array, dtype=np.float64)


def float64_copies(*arrays):
    """float64 copies of several arrays, as a tuple: ``x, w, b = float64_copies(x, w, b)``."""
    return tuple(float64_copy(a) for a in arrays)


def pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def same_pad_totals(hw, k, stride, dilation=1):
    """TensorFlow's total 'same' padding for each spatial axis."""
    totals = []
    for n, kk, s, d in zip(hw, pair(k), pair(stride), pair(dilation)):
        out = -(-n // s)
        totals.append(max((out - 1) * s + (kk - 1) * d + 1 - n, 0))
    return tuple(totals)


def _silent(fn, *args, **kwargs):
    with np.errstate(all="ignore"):
        try:
            return fn(*args, **kwargs)
        except Exception:
            return None


def _is_off_by_one(expected, axes):
    """Predicate: the result differs by one along some of ``axes`` only, and where it overlaps the expected
    result it has the expected values (the windows are right, only their count is off)."""
    expected = np.asarray(expected)

    def pred(actual):
        if not isinstance(actual, np.ndarray) or actual.ndim != expected.ndim:
            return False
        diffs = [abs(a - e) for a, e in zip(actual.shape, expected.shape)]
        if not (all(d == 0 for i, d in enumerate(diffs) if i not in axes) and all(d <= 1 for d in diffs)
                and any(diffs)):
            return False
        common = tuple(slice(0, min(a, e)) for a, e in zip(actual.shape, expected.shape))
        with np.errstate(all="ignore"):
            return bool(np.allclose(actual[common], expected[common], rtol=1e-4, atol=1e-5))
    return pred


def conv_pads(x_shape, w_shape, stride, padding, dilation):
    """((top, bottom), (left, right)) of a convolution's padding, as the reference pads."""
    if isinstance(padding, str):
        if padding.lower() != "same":
            return (0, 0), (0, 0)
        th, tw = same_pad_totals(x_shape[1:3], w_shape[:2], stride, dilation)
        return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)
    if np.ndim(padding) == 0:
        return (padding, padding), (padding, padding)
    if np.ndim(padding) == 1:
        return (padding[0], padding[0]), (padding[1], padding[1])
    return tuple(padding[0]), tuple(padding[1])


def conv_backward_overwritten(dout, x, w, stride, padding, dilation, order):
    """dx, dw and db as a backward pass that assigns (=) where it should accumulate (+=) computes them.

    order "taps": a loop over the kernel taps (u, v) assigning a whole strided slice of dx at each;
    "positions": a loop over the output positions (i, j) assigning each window of dx (and dw, db);
    "channels": a loop over the positions, then the output channels, assigning one channel's share."""
    (top, bottom), (left, right) = conv_pads(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    dxp = np.zeros(xp.shape)
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    kh, kw, _, f = w.shape
    ho, wo = dout.shape[1:3]
    if order == "taps":
        for u in range(kh):
            for v in range(kw):
                dxp[:, u * dh:u * dh + sh * (ho - 1) + 1:sh, v * dw_:v * dw_ + sw * (wo - 1) + 1:sw, :] = dout @ w[u, v].T
    for i in range(ho) if order != "taps" else ():
        for j in range(wo):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw_ * (kw - 1) + 1, dw_)
            if order == "channels":
                dxp[:, rows, cols, :] = np.einsum("n,uvc->nuvc", dout[:, i, j, f - 1], w[..., f - 1])
            else:
                dxp[:, rows, cols, :] = np.einsum("nf,uvcf->nuvc", dout[:, i, j], w)
    dx = dxp[:, top:top + x.shape[1], left:left + x.shape[2], :]
    last = xp[:, (ho - 1) * sh:(ho - 1) * sh + dh * (kh - 1) + 1:dh, (wo - 1) * sw:(wo - 1) * sw + dw_ * (kw - 1) + 1:dw_]
    dw = np.einsum("nuvc,nf->uvcf", last, dout[:, ho - 1, wo - 1])
    dw_last_sample = np.einsum("uvc,f->uvcf", last[-1], dout[-1, ho - 1, wo - 1])
    return dx, (dw, dw_last_sample), (dout[:, ho - 1, wo - 1].sum(axis=0), dout[-1, ho - 1, wo - 1])


def pool_backward_overwritten(dout, x, pool_size, stride, padding, order):
    """dx as a max-pooling backward pass that assigns (=) where windows overlap and it should add up.

    order "taps": a loop over the window offsets assigning np.where(is_max, dout, 0) to a strided slice;
    "windows": a loop over the output positions assigning mask * dout to the whole window;
    "argmax": a loop over the output positions assigning dout to the window's maximum only."""
    kh, kw = pair(pool_size)
    sh, sw = pair((kh, kw) if stride is None else stride)
    if padding.lower() == "same":
        th, tw = same_pad_totals(x.shape[1:3], (kh, kw), (sh, sw))
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        pads = ((0, 0), (0, 0))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    ho, wo = dout.shape[1:3]
    dxp = np.zeros(xp.shape)
    if order == "taps":
        taps = [(slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
                for i in range(kh) for j in range(kw)]
        best = np.max([xp[:, r, c, :] for r, c in taps], axis=0)
        for r, c in taps:
            dxp[:, r, c, :] = np.where(xp[:, r, c, :] == best, dout, 0)
    else:
        for i in range(ho):
            for j in range(wo):
                rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                window = xp[:, rows, cols, :]
                mask = window == window.max(axis=(1, 2), keepdims=True)
                share = mask * dout[:, i:i + 1, j:j + 1, :]
                dxp[:, rows, cols, :] = share if order == "windows" else np.where(mask, share, dxp[:, rows, cols, :])
    return dxp[:, pads[0][0]:pads[0][0] + x.shape[1], pads[1][0]:pads[1][0] + x.shape[2], :]


OFF_BY_ONE = ("the output size is off by one: out = (n + pad_total - k_eff) // stride + 1, "
              "with k_eff = dilation * (k - 1) + 1.")
FLIPPED = ("the kernel is flipped (a true convolution). Keras' Conv2D computes a cross-correlation: "
           "w[u, v] multiplies the window pixel at offset (u, v); do not flip the kernel.")
SAME_SYMMETRIC = ("'same' padding is split the wrong way: when pad_total is odd, TensorFlow puts the extra "
                  "pixel at the bottom/right (pad_top = pad_total // 2, pad_bottom = pad_total - pad_top).")
SAME_LOST = ("'same' padding is split symmetrically as pad_total // 2 on each side, which loses a pixel when "
             "pad_total is odd: pad_top = pad_total // 2, pad_bottom = pad_total - pad_top.")
CHANNELS_FIRST = ("the flatten order is channels-first (NCHW). keras.layers.Flatten on NHWC data keeps the "
                  "channel index fastest: x.reshape(N, -1) without transposing.")
OVERFLOW = ("softmax overflows: np.exp of large logits gives inf and inf/inf = nan. Subtract the row "
            "maximum from the logits before np.exp.")
OVERWRITE_DX = ("an input pixel that several windows cover gets only the last window's gradient: accumulate "
                "with += (dx[...] += ...), never assign with =.")
OVERWRITE_PARAM = ("{name} keeps only the last output position's contribution: it is a SUM over every image and "
                   "every output position, so accumulate with += (or sum), never assign with =.")
OVERWRITE_POOL = ("where pooling windows overlap (stride < pool size), an input can be the maximum of several "
                  "windows: add up their gradients with +=, never assign with = (which also wipes earlier "
                  "gradients, with zeros where a window is not at its maximum).")
POOL_STRIDE = ("the pooling stride is ignored (windows move 1 pixel at a time). stride=None means "
               "stride = pool_size.")


class Mistakes:
    """Known-mistake variants of the reference for one case: dicts name -> (variant, hint)."""

    def __init__(self, ref):
        self.ref = ref

    # -- sizes ----------------------------------------------------------------------------
    def conv_output_size(self, n, k, padding, stride, dilation):
        ref = self.ref
        expected = ref.conv_output_size(n, k, padding, stride, dilation)
        same = isinstance(padding, str) and padding.lower() == "same"
        return {
            "same_floor": (n // stride if same else None,
                           "'same' gives ceil(n / stride), rounded up, not down."),
            "dilation_ignored": (ref.conv_output_size(n, k, padding, stride, 1) if dilation != 1 else None,
                                 "dilation is ignored: the dilated kernel spans k_eff = dilation * (k - 1) + 1."),
            "stride_ignored": (ref.conv_output_size(n, k, padding, 1, dilation) if stride != 1 else None,
                               "the stride is ignored: divide by the stride (integer division)."),
            "off_by_one": (lambda a: abs(a - expected) == 1, OFF_BY_ONE),
            "padding_once": (None if isinstance(padding, str) or padding == 0
                             else ref.conv_output_size(n + padding, k, 0, stride, dilation),
                             "an int padding adds p pixels on EACH side: n + 2p."),
        }

    def zero_pad(self, x, pad):
        x = float64_copy(x)
        expected = self.ref.zero_pad(x, pad)
        m = {}
        if np.ndim(pad) == 1 and pad[0] != pad[1]:
            m["pair_as_before_after"] = (self.ref.zero_pad(x, (tuple(pad), tuple(pad))),
                                         "a pair (ph, pw) means ph rows on top AND bottom, pw columns left AND right.")
        m["channels_padded"] = (lambda a: isinstance(a, np.ndarray) and a.ndim == 4
                                and a.shape[:3] == expected.shape[:3] and a.shape[3] != x.shape[3],
                                "only H and W are padded, never the channel axis.")
        m["batch_padded"] = (lambda a: isinstance(a, np.ndarray) and a.ndim == 4
                             and a.shape[1:] == expected.shape[1:] and a.shape[0] != x.shape[0],
                             "only H and W are padded, never the batch axis.")
        return m

    # -- convolution ------------------------------------------------------------------------
    def _conv_same_variants(self, fn, x, w, stride, padding, dilation):
        """(symmetric-extra-top/left padding, pad_total // 2 each side) for 'same', else (None, None)."""
        if not (isinstance(padding, str) and padding.lower() == "same"):
            return None, None
        th, tw = same_pad_totals(x.shape[1:3], w.shape[:2], stride, dilation)
        if th % 2 == 0 and tw % 2 == 0:
            return None, None
        top_left = ((th - th // 2, th // 2), (tw - tw // 2, tw // 2))
        lost = ((th // 2, th // 2), (tw // 2, tw // 2))
        return fn(top_left), fn(lost)

    def conv2d_forward(self, x, w, b, stride, padding, dilation):
        ref = self.ref
        x, w, b = float64_copies(x, w, b)
        expected = ref.conv2d_forward(x, w, b, stride, padding, dilation)
        top_left, lost = self._conv_same_variants(
            lambda p: _silent(ref.conv2d_forward, x, w, b, stride, p, dilation), x, w, stride, padding, dilation)
        m = {
            "flipped": (ref.conv2d_forward(x, w[::-1, ::-1], b, stride, padding, dilation), FLIPPED),
            "same_symmetric": (top_left, SAME_SYMMETRIC),
            "same_lost_pixel": (lost, SAME_LOST),
            "no_bias": (ref.conv2d_forward(x, w, np.zeros_like(b), stride, padding, dilation),
                        "the bias b is not added (one bias per output channel)."),
        }
        if pair(stride) != (1, 1):
            m["stride_ignored"] = (_silent(ref.conv2d_forward, x, w, b, 1, padding, dilation),
                                   "the stride is ignored.")
        if pair(dilation) != (1, 1):
            m["dilation_ignored"] = (_silent(ref.conv2d_forward, x, w, b, stride, padding, 1),
                                     "the dilation is ignored: kernel taps are dilation pixels apart.")
        if isinstance(padding, str) and padding.lower() == "same":
            m["same_as_valid"] = (_silent(ref.conv2d_forward, x, w, b, stride, "valid", dilation),
                                  "'same' padding is not applied.")
        m["off_by_one"] = (_is_off_by_one(expected, (1, 2)), OFF_BY_ONE)
        return m

    def conv2d_backward(self, dout, x, w, b, stride, padding, dilation):
        """dict output name ('dx', 'dw', 'db') -> mistakes for that output."""
        ref = self.ref
        dout, x, w, b = float64_copies(dout, x, w, b)
        dx, dw, db = ref.conv2d_backward(dout, x, w, b, stride, padding, dilation)
        fdx, fdw, _ = ref.conv2d_backward(dout, x, w[::-1, ::-1], b, stride, padding, dilation)
        top_left, _ = self._conv_same_variants(
            lambda p: _silent(ref.conv2d_backward, dout, x, w, b, stride, p, dilation),
            x, w, stride, padding, dilation)
        top_left = top_left or (None, None, None)
        if isinstance(padding, str):
            if padding.lower() == "same":
                th, tw = same_pad_totals(x.shape[1:3], w.shape[:2], stride, dilation)
            else:
                th = tw = 0
        elif np.ndim(padding) == 0:
            th = tw = 2 * padding
        else:
            th, tw = 2 * padding[0], 2 * padding[1]
        padded = (x.shape[0], x.shape[1] + th, x.shape[2] + tw, x.shape[3])
        (top, _), (left, _) = conv_pads(x.shape, w.shape, stride, padding, dilation)
        not_cropped = (lambda a: isinstance(a, np.ndarray) and a.shape == padded and padded != x.shape
                       and np.allclose(a[:, top:top + x.shape[1], left:left + x.shape[2]], dx, rtol=1e-4, atol=1e-5),
                       "dx still includes the padding: crop it away (dx = dxp[:, top:top + H, left:left + W]).")
        overwritten = {order: conv_backward_overwritten(dout, x, w, stride, padding, dilation, order)
                       for order in ("taps", "positions", "channels")}
        return {
            "dx": {"flipped": (fdx, FLIPPED), "same_symmetric": (top_left[0], SAME_SYMMETRIC),
                   "not_cropped": not_cropped,
                   **{f"overwritten_{order}": (v[0], OVERWRITE_DX) for order, v in overwritten.items()}},
            "dw": {"flipped": (fdw[::-1, ::-1], FLIPPED), "same_symmetric": (top_left[1], SAME_SYMMETRIC),
                   "overwritten": (overwritten["taps"][1][0], OVERWRITE_PARAM.format(name="dw")),
                   "overwritten_last_sample": (overwritten["taps"][1][1], OVERWRITE_PARAM.format(name="dw")),
                   "transposed": (lambda a: isinstance(a, np.ndarray) and a.ndim == 4 and a.shape != w.shape
                                  and sorted(a.shape) == sorted(w.shape),
                                  "dw must have the shape of w: (KH, KW, C_in, C_out).")},
            "db": {"mean": (dout.mean(axis=(0, 1, 2)),
                            "db is the SUM of dout over the batch and all output positions, not the mean."),
                   "overwritten": (overwritten["taps"][2][0], OVERWRITE_PARAM.format(name="db")),
                   "overwritten_last_sample": (overwritten["taps"][2][1], OVERWRITE_PARAM.format(name="db")),
                   "per_sample": (lambda a: isinstance(a, np.ndarray) and a.ndim > 1,
                                  "db must have shape (C_out,): sum dout over axes 0, 1 and 2.")},
        }

    # -- activations --------------------------------------------------------------------------
    def relu(self, x):
        x = float64_copy(x)
        return {"abs": (np.abs(x), "relu sets negative values to 0: np.maximum(x, 0)."),
                "min": (np.minimum(x, 0), "relu keeps the positive values: np.maximum(x, 0), not np.minimum.")}

    def relu_backward(self, dout, x):
        dout, x = float64_copies(dout, x)
        return {"no_dout": ((x > 0).astype(np.float64), "multiply the mask (x > 0) by dout."),
                "mask_from_dout": (dout * (dout > 0), "the mask comes from x (the forward input), not from dout."),
                "relu_of_x": (np.maximum(x, 0), "relu_backward returns dout where x > 0 and 0 elsewhere, "
                                                "not relu(x).")}

    def leaky_relu(self, x, alpha):
        x = float64_copy(x)
        return {"alpha_ignored": (self.ref.leaky_relu(x) if alpha != 0.01 else None,
                                  "the alpha argument is ignored (a hard-coded slope is used)."),
                "relu": (np.maximum(x, 0), "negative inputs are multiplied by alpha, not set to 0.")}

    # -- pooling ----------------------------------------------------------------------------
    def _pool_padded(self, x, pool, stride, top_left, fill):
        """x padded for 'same' pooling with the given split and fill value, plus the pads used."""
        step = pool if stride is None else stride
        th, tw = same_pad_totals(x.shape[1:3], pool, step)
        if top_left:
            pads = ((th - th // 2, th // 2), (tw - tw // 2, tw // 2))
        else:
            pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
        return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill), pads

    def maxpool2d_forward(self, x, pool_size, stride, padding):
        pool = pool_size
        ref = self.ref
        x = float64_copy(x)
        expected = ref.maxpool2d_forward(x, pool, stride, padding)
        m = {}
        if pair(pool if stride is None else stride) != (1, 1):
            full = _silent(ref.maxpool2d_forward, x, pool, 1, padding)
            m["stride_ignored"] = (full, POOL_STRIDE)
            ho, wo = expected.shape[1:3]
            if full is not None and full.shape[1] >= ho and full.shape[2] >= wo:
                m["stride_ignored_cropped"] = (full[:, :ho, :wo], POOL_STRIDE)
        if padding.lower() == "same":
            zp, _ = self._pool_padded(x, pool, stride, False, 0.0)
            m["same_zero_padding"] = (_silent(ref.maxpool2d_forward, zp, pool, stride, "valid"),
                                      "'same' max pooling pads with -inf (the padding never wins the max), "
                                      "not with zeros.")
            sp, _ = self._pool_padded(x, pool, stride, True, -np.inf)
            m["same_symmetric"] = (_silent(ref.maxpool2d_forward, sp, pool, stride, "valid"), SAME_SYMMETRIC)
            m["same_as_valid"] = (_silent(ref.maxpool2d_forward, x, pool, stride, "valid"),
                                  "'same' padding is not applied.")
        m["off_by_one"] = (_is_off_by_one(expected, (1, 2)), OFF_BY_ONE)
        return m

    def maxpool2d_backward(self, dout, x, pool_size, stride, padding):
        pool = pool_size
        ref = self.ref
        dout, x = float64_copies(dout, x)
        m = {}
        if padding.lower() == "same":
            for name, top_left, fill, hint in (
                    ("same_zero_padding", False, 0.0, "'same' max pooling pads with -inf, not with zeros."),
                    ("same_symmetric", True, -np.inf, SAME_SYMMETRIC)):
                xp, pads = self._pool_padded(x, pool, stride, top_left, fill)
                dxp = _silent(ref.maxpool2d_backward, dout, xp, pool, stride, "valid")
                if dxp is not None:
                    dxp = dxp[:, pads[0][0]:pads[0][0] + x.shape[1], pads[1][0]:pads[1][0] + x.shape[2]]
                m[name] = (dxp, hint)
        for order in ("taps", "windows", "argmax"):
            m[f"overwritten_{order}"] = (pool_backward_overwritten(dout, x, pool, stride, padding, order),
                                         OVERWRITE_POOL)
        m["shape"] = (lambda a: isinstance(a, np.ndarray) and a.shape == dout.shape and a.shape != x.shape,
                      "maxpool2d_backward returns dx, with the shape of x.")
        return m

    def global_avg_pool(self, x):
        x = float64_copy(x)
        return {
            "sum": (x.sum(axis=(1, 2)), "average (mean) over H and W, not sum."),
            "max": (x.max(axis=(1, 2)), "global AVERAGE pooling takes the mean, not the max."),
            "wrong_axes": (x.mean(axis=(2, 3)),
                           "average over axes 1 and 2 (H and W) of the NHWC array."),
        }

    # -- flatten / dense ----------------------------------------------------------------------
    def flatten(self, x):
        x = float64_copy(x)
        return {"channels_first": (x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1), CHANNELS_FIRST)}

    def flatten_backward(self, dout, x_shape):
        dout = float64_copy(dout)
        n, h, w, c = x_shape
        return {"channels_first": (dout.reshape(n, c, h, w).transpose(0, 2, 3, 1), CHANNELS_FIRST)}

    def dense_forward(self, x, w, b):
        x, w, b = float64_copies(x, w, b)
        return {"no_bias": (x @ w, "the bias b is not added.")}

    def dense_backward(self, dout, x, w, b):
        dout, x, w, b = float64_copies(dout, x, w, b)
        return {
            "dx": {},
            "dw": {"scaled": ((x.T @ dout) / x.shape[0], "dw = x.T @ dout, without dividing by the batch size."),
                   "transposed": (dout.T @ x, "dw must have the shape of w (D_in, D_out): dw = x.T @ dout.")},
            "db": {"mean": (dout.mean(axis=0), "db is the SUM of dout over the batch, not the mean."),
                   "scalar": (lambda a: np.ndim(a) == 0,
                              "db must have shape (D_out,): sum over axis 0 only.")},
        }

    # -- softmax / loss ------------------------------------------------------------------------
    def softmax(self, z):
        z = float64_copy(z)
        with np.errstate(all="ignore"):
            e = np.exp(z)
            naive = e / e.sum(axis=-1, keepdims=True)
        large = np.abs(z).max() > 700
        m = {"overflow": (naive, OVERFLOW)}
        if large:
            m["nonfinite"] = (lambda a: isinstance(a, np.ndarray) and not np.all(np.isfinite(a)), OVERFLOW)
        if z.ndim == 2 and z.shape[0] > 1:
            s = z - z.max(axis=0, keepdims=True)
            e0 = np.exp(s)
            m["axis0"] = (e0 / e0.sum(axis=0, keepdims=True),
                          "softmax is normalised over the wrong axis: use the last axis (axis=-1).")
        return m

    def cross_entropy_loss(self, logits, y):
        """dict 'loss' / 'dlogits' -> mistakes."""
        z = float64_copy(logits)
        n = z.shape[0]
        loss, d = self.ref.cross_entropy_loss(z, y)
        with np.errstate(all="ignore"):
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
            naive_loss = float(-np.log(p[np.arange(n), y]).mean())
            naive_d = (p - np.eye(z.shape[1])[y]) / n
        nonfinite = (lambda a: not np.all(np.isfinite(np.asarray(a, dtype=float))), OVERFLOW)
        large = np.abs(z).max() > 80
        return {
            "loss": {"overflow": (naive_loss, OVERFLOW), "nonfinite": nonfinite if large else (None, None),
                     "sum": (loss * n, "the loss is the MEAN over the batch, not the sum.")},
            "dlogits": {"overflow": (naive_d, OVERFLOW), "nonfinite": nonfinite if large else (None, None),
                        "not_averaged": (d * n, "dlogits = (softmax(logits) - onehot(y)) / N: divide by the batch size N."),
                        "sign": (-d, "the gradient's sign is flipped: dlogits = (softmax - onehot) / N."),
                        "no_onehot": (self.ref.softmax(z) / n,
                                      "subtract 1 at the true class: dlogits = (softmax - onehot(y)) / N.")},
        }

    def count_conv_params(self, kh, kw, cin, cout, use_bias):
        n = self.ref.count_conv_params(kh, kw, cin, cout, use_bias)
        return {
            "no_bias": (n - cout if use_bias else None, "count one bias per output channel (filter)."),
            "bias_when_disabled": (n + cout if not use_bias else None, "use_bias=False means no biases."),
            "no_cin": (kh * kw * cout + (cout if use_bias else 0),
                       "each filter spans all input channels: kh * kw * cin weights per filter."),
        }


GRADIENT_EPS = 1e-3                        # central-difference step


class GradCheck:
    """Numeric gradients for the backward tests, computed in the grader's process.

    Points compare the student's gradient with central differences of the REFERENCE forward: a
    student process keeps state between calls, so its own forward evaluated at perturbed inputs
    could be made to agree with any backward. The student's own forward is used only for the
    diagnosis, when the gradient is wrong: a backward that matches the numeric gradient of a wrong
    forward is told to fix the forward first.
    """

    def __init__(self, student, ref):
        self.student = student
        self.ref = ref

    @staticmethod
    def _numeric(fn, args, kwargs, wrt, dout, eps):
        args = list(float64_copies(*args))

        def loss(v):
            a = list(args)
            a[wrt] = v
            return float(np.sum(np.asarray(fn(*a, **kwargs), dtype=np.float64) * dout))

        return numeric_gradient(loss, args[wrt], eps)

    def gradient(self, name, args, kwargs, wrt, dout, eps=GRADIENT_EPS):
        """Central-difference gradient of sum(reference forward(*args) * dout) with respect to args[wrt]."""
        return self._numeric(getattr(self.ref, name), args, kwargs, wrt, dout, eps)

    def _agrees_with_own_forward(self, grad, name, args, kwargs, wrt, dout) -> bool:
        """True if grad matches the numeric gradient of the student's own forward (diagnosis only)."""
        try:
            numeric = self._numeric(getattr(self.student, name), args, kwargs, wrt, dout, GRADIENT_EPS)
        except (AssertionError, TypeError, ValueError):  # StudentError, or a result that is not numeric
            return False
        return (isinstance(grad, np.ndarray) and grad.shape == numeric.shape
                and bool(np.allclose(grad, numeric, rtol=1e-4, atol=1e-6)))

    def assert_matches_numeric(self, grad, forward, args, kwargs=None, *, wrt=0, dout, what, case, mistakes,
                               atol=1e-6):
        """Check a student's gradient ``grad`` (named ``what``) against the numeric gradient of the
        reference ``forward`` with respect to ``args[wrt]``, for the upstream gradient ``dout``."""
        kwargs = kwargs or {}
        numeric = self.gradient(forward, args, kwargs, wrt, dout)
        try:
            assert_matches(grad, numeric, what=f"{what} (compared with the numeric gradient of the forward pass)",
                           case=case, mistakes=mistakes, rtol=1e-4, atol=atol)
        except Mismatch as exc:
            if not exc.diagnosis and self._agrees_with_own_forward(grad, forward, args, kwargs, wrt, dout):
                raise Mismatch(exc.message, f"{what} is the gradient of your own `{forward}`, which is wrong on "
                                            f"this case: fix `{forward}` first.") from None
            raise


@pytest.fixture
def mistakes(reference):
    return Mistakes(reference)


@pytest.fixture
def gradcheck(student, reference):
    return GradCheck(student, reference)
