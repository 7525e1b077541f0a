"""The pure-Python reader of dlib's serialization: a file written here in dlib's format
(dlib/serialize.h pack_int and float_details, dlib/cuda/tensor.h) reads back exactly,
and every malformed byte is refused with its offset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fer_bench.pretrained.dlib_serialize import DlibFormatError, DlibReader


def pack_int(value: int) -> bytes:
    """dlib's pack_int: a control byte (byte count, 0x80 if negative), then the
    magnitude little-endian in as few bytes as hold it (zero: one byte)."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_float(value: float) -> bytes:
    """float_details: an int64 mantissa then an int16 exponent, value = m * 2^e;
    exponents 32000-32002 are +inf, -inf and nan; trailing zero bytes shifted out."""
    if math.isnan(value):
        return pack_int(0) + pack_int(32002)
    if math.isinf(value):
        return pack_int(0) + pack_int(32000 if value > 0 else 32001)
    fraction, exp = math.frexp(value)
    mantissa, exponent = int(fraction * 2**62), exp - 62
    while mantissa and mantissa & 0xFF == 0:
        mantissa, exponent = mantissa >> 8, exponent + 8
    return pack_int(mantissa) + pack_int(exponent)


def pack_string(text: str) -> bytes:
    return pack_int(len(text)) + text.encode()


def pack_tensor(array: np.ndarray) -> bytes:
    shape = (1,) * (4 - array.ndim) + array.shape
    return pack_int(2) + b"".join(map(pack_int, shape)) + array.astype("<f4").tobytes()


INTS = [
    (0, 1, True), (1, 1, True), (-1, 1, True), (127, 1, True), (-128, 1, True),
    (255, 1, False), (-32768, 2, True), (32767, 2, True), (65535, 2, False),
    (-(2**31), 4, True), (2**31 - 1, 4, True), (2**32 - 1, 4, False),
    (-(2**63), 8, True), (2**63 - 1, 8, True), (2**64 - 1, 8, False), (256, 8, True),
]  # fmt: skip
FLOATS = [0.0, 0.04, 0.6, -3.5, 1e-30, -2.5e30, 122.782, math.inf, -math.inf]


def test_round_trip_of_every_kind() -> None:
    tensor = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) / 7 - 1
    blob = b"".join(pack_int(v) for v, _, _ in INTS)
    blob += b"".join(map(pack_float, FLOATS)) + pack_float(math.nan)
    blob += b"10" + pack_string("con_4") + pack_tensor(tensor)
    blob += pack_int(1) + b"".join(pack_int(n) for n in (32, 3, 7, 7))  # an alias tensor
    r = DlibReader(blob)
    assert [r.integer(size, signed) for _, size, signed in INTS] == [v for v, _, _ in INTS]
    assert [r.floating() for _ in FLOATS] == FLOATS
    assert math.isnan(r.floating())
    assert (r.boolean(), r.boolean()) == (True, False)
    assert r.expect_string("con_4") == "con_4"
    np.testing.assert_array_equal(r.tensor(), tensor)
    assert r.alias_tensor() == (32, 3, 7, 7)
    r.end()


def test_pack_float_is_exact_for_float32_values() -> None:
    for value in np.random.default_rng(0).standard_normal(50).astype(np.float32):
        assert DlibReader(pack_float(float(value))).floating() == float(value)


@pytest.mark.parametrize(
    ("blob", "read", "offset", "message"),
    [
        (pack_int(300), lambda r: r.integer(1), 0, "control byte 0x02 for 1 bytes"),
        (bytes([0x21, 5]), lambda r: r.integer(), 0, "control byte 0x21"),
        (bytes([0x00]), lambda r: r.integer(), 0, "control byte 0x00"),
        (pack_int(-1), lambda r: r.integer(4, signed=False), 0, "negative value"),
        (pack_int(2**31), lambda r: r.integer(4), 0, "overflows 4 bytes"),
        (bytes([0x04, 1, 2]), lambda r: r.integer(), 1, "needs 4 bytes, 2 left"),
        (pack_int(1) + b"x", lambda r: (r.integer(), r.boolean()), 2, "bad bool"),
        (pack_string("con_5"), lambda r: r.expect_string("con_4"), 0, "found 'con_5'"),
        (pack_int(1) + pack_int(32003), lambda r: r.floating(), 0, "exponent 32003"),
        (b" 1.5", lambda r: r.floating(), 0, "old ASCII format"),
        (pack_int(3) + pack_int(0) * 4, lambda r: r.tensor(), 0, "tensor version"),
        (pack_tensor(np.zeros(3))[:-1], lambda r: r.tensor(), 10, "needs 12 bytes, 11"),
        (pack_int(7) + b"\0", lambda r: (r.integer(), r.end()), 2, "1 trailing bytes"),
    ],
)
def test_refusals_name_the_offset(blob: bytes, read, offset: int, message: str) -> None:
    with pytest.raises(DlibFormatError, match=rf"byte {offset}: .*{message}") as err:
        read(DlibReader(blob, "test.dat"))
    assert "\n" not in str(err.value) and str(err.value).startswith("test.dat: ")
