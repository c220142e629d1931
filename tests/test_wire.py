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
