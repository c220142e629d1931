"""Only plain data crosses between the processes."""
import numpy as np
import pytest

from grader.sandbox import wire


def roundtrip(value):
    return wire.loads(wire.dumps(value))


def test_plain_data_roundtrips():
    value = {"a": (1, 2.5, "s", None, True), "b": [np.arange(6, dtype=np.float32).reshape(2, 3)], 3: 2**70,
             "nan": float("nan"), "scalar": np.int64(7)}
    back = roundtrip(value)
    assert back["a"] == (1, 2.5, "s", None, True) and back[3] == 2**70
    assert back["b"][0].dtype == np.float32 and np.array_equal(back["b"][0], value["b"][0])
    assert np.isnan(back["nan"]) and back["scalar"] == 7 and isinstance(back["scalar"], np.int64)


def test_an_ndarray_subclass_arrives_as_a_plain_array():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return True
    back = roundtrip(np.zeros(3).view(Liar))
    assert type(back) is np.ndarray
    assert not np.array_equal(back, np.ones(3))


@pytest.mark.parametrize("value", [object(), np.array([object()]), lambda: 1, {1.5: 2}, {"x": {1, 2}},
                                   np.zeros(2, dtype=[("a", "f8")])])
def test_anything_else_is_refused(value):
    with pytest.raises(wire.WireError):
        wire.dumps(value)


def test_malformed_messages_are_refused():
    good = wire.dumps(np.arange(3))
    with pytest.raises(wire.WireError):
        wire.loads(good[:-5])
    with pytest.raises((wire.WireError, ValueError)):
        wire.loads(good.replace(b"__ndarray__", b"__pickled__"))


def test_an_oversized_header_is_refused_before_it_is_parsed():
    import json
    import struct
    header = json.dumps([[]] * (wire.MAX_HEADER_BYTES // 3)).encode()
    message = struct.pack("!Q", len(header)) + header + struct.pack("!Q", 0)
    with pytest.raises(wire.WireError, match="header over"):
        wire.loads(message)


def _forged_array(dtype: object, shape: object, data: bytes) -> bytes:
    import json
    import struct
    header = json.dumps({"__ndarray__": 0, "dtype": dtype, "shape": shape, "scalar": False}).encode()
    return (struct.pack("!Q", len(header)) + header + struct.pack("!Q", 1) + struct.pack("!Q", len(data)) + data)


@pytest.mark.parametrize("dtype, shape, data", [
    ("|O8", [1], b"\0" * 8),                      # objects
    ("|V8", [1], b"\0" * 8),                      # raw void
    ("<f8", [2**40, 2**40, 2**40, 2**40], b""),   # a product that would wrap in int64
    ("<f8", [3], b"\0" * 16),                     # fewer bytes than the shape needs
    ("<f8", [-1], b"\0" * 8),
    ("float64", [1], b"\0" * 8),                  # only numpy's dtype.str spelling
    (["<f8"], [1], b"\0" * 8),
    ("<f8", "1", b"\0" * 8),
])
def test_a_forged_array_header_is_refused(dtype, shape, data):
    with pytest.raises(wire.WireError):
        wire.loads(_forged_array(dtype, shape, data))


def test_arrays_keep_dtype_shape_and_byte_order():
    for array in (np.arange(6, dtype=">i4").reshape(3, 2), np.zeros((0, 5), dtype=bool), np.complex64(1 + 2j),
                  np.asfortranarray(np.arange(12.0).reshape(3, 4))):
        back = roundtrip(array)
        assert back.dtype == array.dtype and np.shape(back) == np.shape(array) and np.array_equal(back, array)
    assert roundtrip(np.arange(3)).flags.writeable


def test_two_arrays_never_share_memory():
    import json
    import struct
    ref = {"__ndarray__": 0, "dtype": "<f8", "shape": [1], "scalar": False}
    header = json.dumps({"__tuple__": [ref, ref]}).encode()
    data = b"\0" * 8
    forged = struct.pack("!Q", len(header)) + header + struct.pack("!Q", 1) + struct.pack("!Q", len(data)) + data
    with pytest.raises(wire.WireError, match="array reference"):
        wire.loads(forged)  # one blob named twice: the second array would alias the first


def test_arrays_read_from_a_frame_are_writable_views_of_their_own_bytes():
    a, b = np.arange(5.0), np.arange(3, dtype=np.int8)
    payload = bytearray(b"".join(memoryview(p).cast("B") for p in wire.encode((a, b))))
    x, y = wire.loads(payload)
    assert np.array_equal(x, a) and np.array_equal(y, b) and x.flags.writeable and y.flags.writeable
    x[:] = -1
    assert np.array_equal(y, b)


def test_write_frame_sends_every_byte_whatever_the_kernel_accepts_per_call():
    sent = bytearray()

    def stingy(fd, views):  # at most 7 bytes per call, as a full pipe may take
        taken = bytes(b"".join(views))[:7]
        sent.extend(taken)
        return len(taken)

    big = np.arange(1000, dtype=np.float32)
    wire.write_frame(9, wire.encode({"x": big, "s": "text"}), stingy)
    size = wire.frame_size(bytes(sent[:wire.FRAME_HEADER]))
    assert size == len(sent) - wire.FRAME_HEADER
    assert np.array_equal(wire.loads(sent[wire.FRAME_HEADER:])["x"], big)


def test_a_single_array_is_not_copied_on_arrival():
    payload = bytearray(wire.dumps({"x": np.arange(7, dtype=np.float64), "label": "odd-sized header"}))
    x = wire.loads(payload)["x"]
    assert x.base is not None and np.shares_memory(x, np.frombuffer(payload, dtype=np.uint8))
