"""Data-only messages between the grader and the student process.

A message is a JSON header followed by the arrays' raw bytes (dtype and shape are in the header).
Only these kinds cross:
None, bool, int, float, str, plain NumPy arrays of numeric or bool dtype, NumPy scalars,
and tuples, lists and dicts of those. Nothing is pickled, so a value cannot carry code or
lie about itself: an ndarray subclass arrives as a plain ndarray.

Arrays are not copied on their way: write_frame sends their memory (writev), read_frame reads a frame
into one buffer, and loads makes each array a view of its own bytes in it.

This module is imported by both processes and must depend on nothing but NumPy.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Callable, Sequence

import numpy as np

MAX_DEPTH = 32
MAX_NDIM = 32
MAX_ELEMENTS = 1 << 28
MAX_HEADER_BYTES = 4 << 20  # the JSON part of a message (arrays' bytes travel beside it)
MIN_ARRAY_REF = len('{"__ndarray__":0,"dtype":"|b1","shape":[],"":0}')  # the shortest header text naming an array
ALLOWED_KINDS = set("biufc")
DTYPE = re.compile(r"[<>|][biufc][0-9]{1,2}")  # numpy's dtype.str of a plain numeric or bool dtype
_LEN = struct.Struct("!Q")
FRAME_HEADER = 8  # every frame on the pipes: its payload's length (8 bytes, big-endian), then the payload
IOV_MAX = 1024  # buffers per writev


class Status:
    """The statuses a student process's reply can carry."""
    READY = "ready"
    REFUSED = "refused"  # the submission cannot be placed in the sandbox (the student's to fix)
    OK = "ok"
    RAISED = "raised"
    MISSING = "missing"
    NOT_CALLABLE = "not_callable"
    NOT_MODEL = "not_model"
    UNSAVEABLE = "unsaveable"
    BAD_VALUE = "bad_value"
    ERROR = "error"


def cell_reply_id(index: int) -> int:
    """The id of the reply the student process sends, unasked, after running cell index (requests' ids are
    positive)."""
    return -(index + 1)


def write_frame(fd: int, parts: Sequence, writev: Callable[[int, Sequence], int] = os.writev) -> None:
    """Write one frame whose payload is the parts (bytes or buffers, as encode gives them) to fd, without
    joining them: an array's memory goes to the pipe as it is."""
    views = [memoryview(part).cast("B") for part in parts]
    views.insert(0, memoryview(sum(map(len, views)).to_bytes(FRAME_HEADER, "big")))
    first = 0
    while first < len(views):
        written = writev(fd, views[first:first + IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def frame_size(header: bytes | memoryview) -> int:
    """The payload length announced by a frame header."""
    return int.from_bytes(header, "big")


class WireError(ValueError):
    """A value that is not plain data, or a malformed message."""


def _describe(value) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__


def _encode(value, blobs: list[np.ndarray], depth: int):
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"__bigint__": str(value)}
    if type(value) is float:
        return {"__float__": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in ALLOWED_KINDS or array.dtype.fields is not None:
            raise WireError(f"arrays of dtype {array.dtype} cannot be sent; use a numeric dtype")
        blobs.append(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # its memory, not a copy
        return {"__ndarray__": len(blobs) - 1, "dtype": array.dtype.str, "shape": list(array.shape),
                "scalar": isinstance(value, np.generic)}
    if type(value) is tuple:
        return {"__tuple__": [_encode(v, blobs, depth + 1) for v in value]}
    if type(value) is list:
        return [_encode(v, blobs, depth + 1) for v in value]
    if type(value) is dict:
        items = []
        for key, item in value.items():
            if type(key) not in (str, int):
                raise WireError(f"dict keys must be str or int, not {_describe(key)}")
            items.append([key, _encode(item, blobs, depth + 1)])
        return {"__dict__": items}
    raise WireError(f"a {_describe(value)} is not plain data (expected arrays, numbers, strings, "
                    "or tuples/lists/dicts of those)")


def _decode(node, blobs: list[memoryview | None], depth: int):
    if depth > MAX_DEPTH:
        raise WireError("message is nested too deeply")
    if node is None or type(node) in (bool, int, str):
        return node
    if type(node) is list:
        return [_decode(v, blobs, depth + 1) for v in node]
    if type(node) is not dict or len(node) not in (1, 4):
        raise WireError("malformed message")
    if "__float__" in node:
        return float(node["__float__"])
    if "__bigint__" in node:
        return int(node["__bigint__"])
    if "__tuple__" in node:
        return tuple(_decode(v, blobs, depth + 1) for v in node["__tuple__"])
    if "__dict__" in node:
        return {key: _decode(v, blobs, depth + 1) for key, v in node["__dict__"]}
    if "__ndarray__" in node:
        index = node["__ndarray__"]
        blob = blobs[index] if type(index) is int and 0 <= index < len(blobs) else None
        if blob is None:
            raise WireError("malformed array reference")
        blobs[index] = None  # each array owns its bytes: no two arrays share memory
        array = _checked_array(blob, node.get("dtype"), node.get("shape"))
        return array[()] if node.get("scalar") is True else array
    raise WireError("malformed message")


def _checked_array(blob: memoryview, dtype_str, shape) -> np.ndarray:
    """An array over its raw bytes (copied only to align them), refusing a bad dtype, an implausible shape or a
    size that does not match."""
    if type(dtype_str) is not str or not DTYPE.fullmatch(dtype_str):
        raise WireError("array of a refused dtype")
    dtype = np.dtype(dtype_str)
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.hasobject:
        raise WireError("array of a refused dtype")
    if type(shape) is not list or len(shape) > MAX_NDIM or any(type(n) is not int or n < 0 for n in shape):
        raise WireError("array of an implausible shape")
    count = math.prod(shape)  # exact: a shape cannot overflow into a plausible size
    if count > MAX_ELEMENTS or count * dtype.itemsize != len(blob):
        raise WireError("array whose size does not match its data")
    array = np.frombuffer(blob, dtype=dtype).reshape(shape)
    return array if array.flags.aligned and array.flags.writeable else array.copy()


def encode(message) -> list:
    """A message as the buffers of its payload (the arrays' own memory, not copies), for write_frame; raise
    WireError if it holds anything but plain data."""
    blobs: list[np.ndarray] = []
    header = json.dumps(_encode(message, blobs, 0)).encode()
    header += b" " * (-len(header) % 8)  # the first array starts 8-aligned in the payload: loads need not copy it
    parts: list = [_LEN.pack(len(header)), header, _LEN.pack(len(blobs))]
    for blob in blobs:
        parts += [_LEN.pack(blob.nbytes), blob]
    return parts


def dumps(message) -> bytes:
    """A message as one bytes payload (encode's buffers joined)."""
    return b"".join(memoryview(part).cast("B") for part in encode(message))


def loads(data):
    """Decode a payload (bytes, or a writable buffer as read_frame gives) into plain data; raise WireError if
    malformed. Arrays are views of data's memory where it is writable and aligned."""
    view = memoryview(data)
    offset = 0

    def take(n: int) -> memoryview:
        nonlocal offset
        if offset + n > len(view):
            raise WireError("truncated message")
        chunk = view[offset:offset + n]
        offset += n
        return chunk

    header_size = _LEN.unpack(take(_LEN.size))[0]
    if header_size > MAX_HEADER_BYTES:
        raise WireError(f"message header over {MAX_HEADER_BYTES:,} bytes")
    header = json.loads(bytes(take(header_size)))
    count = _LEN.unpack(take(_LEN.size))[0]
    if count > header_size // MIN_ARRAY_REF:  # each would cost a memoryview (~200 bytes) for its 8 bytes of length
        raise WireError("more arrays than the message header can name")
    blobs: list[memoryview | None] = [take(_LEN.unpack(take(_LEN.size))[0]) for _ in range(count)]
    return _decode(header, blobs, 0)
