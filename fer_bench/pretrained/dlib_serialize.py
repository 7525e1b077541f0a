"""A strict reader of dlib's binary serialization (davisking/dlib@3d40bf5: integers
dlib/serialize.h:343-463 pack_int/unpack_int, floats serialize.h:645-661 and :721-750
with dlib/float_details.h:86-88, bools serialize.h:1093-1112, tensors
dlib/cuda/tensor.h:461-483 and alias tensors tensor.h:674-682).

Only what dlib's DNN files use: integers, floats, bools, strings and tensors. Every
read checks its bytes, and any surprise is a :class:`DlibFormatError` naming the byte
offset, so a file is either understood completely or refused.
"""

from __future__ import annotations

import math

import numpy as np

# float_details exponents that encode non-finite values (dlib/float_details.h).
_NON_FINITE = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibFormatError(ValueError):
    """A file that is not what the reader expects, at a byte offset."""


class DlibReader:
    """Reads a bytes buffer front to back; ``offset`` is the next byte to read."""

    def __init__(self, data: bytes, name: str = "dlib file") -> None:
        self.data = memoryview(data)
        self.name = name
        self.offset = 0

    def fail(self, what: str, at: int | None = None) -> DlibFormatError:
        where = self.offset if at is None else at
        return DlibFormatError(f"{self.name}: byte {where}: {what}")

    def take(self, n: int) -> memoryview:
        if self.offset + n > len(self.data):
            raise self.fail(f"needs {n} bytes, {len(self.data) - self.offset} left")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def integer(self, size: int = 8, signed: bool = True) -> int:
        """An integer of a ``size``-byte C type: a control byte (low 4 bits the byte
        count, 0x80 negative), then the magnitude's bytes, little-endian (pack_int)."""
        at = self.offset
        control = self.take(1)[0]
        count, negative = control & 0x0F, bool(control & 0x80)
        if control & 0x70 or not 1 <= count <= size:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {size} bytes", at)
        if negative and not signed:
            raise self.fail("negative value for an unsigned integer", at)
        value = int.from_bytes(self.take(count), "little")
        limit = 1 << (8 * size - 1 if signed else 8 * size)
        if value > limit or (value == limit and not negative):
            raise self.fail(f"integer {value} overflows {size} bytes", at)
        return -value if negative else value

    def floating(self) -> float:
        """A float as dlib's float_details: int64 mantissa, then int16 exponent."""
        at = self.offset
        if at < len(self.data) and self.data[at] & 0x70:
            raise self.fail("float in dlib's old ASCII format", at)
        mantissa = self.integer(8)
        exponent = self.integer(2)
        if exponent in _NON_FINITE:
            return _NON_FINITE[exponent]
        if exponent > 32002:
            raise self.fail(f"bad float exponent {exponent}", at)
        return math.ldexp(float(mantissa), exponent)

    def boolean(self) -> bool:
        at = self.offset
        ch = bytes(self.take(1))
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}", at)
        return ch == b"1"

    def string(self) -> str:
        n = self.integer(8, signed=False)
        at = self.offset
        raw = bytes(self.take(n))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string", at) from None

    def expect_string(self, *allowed: str) -> str:
        at = self.offset
        got = self.string()
        if got not in allowed:
            raise self.fail(f"expected {' or '.join(map(repr, allowed))}, found {got!r}", at)
        return got

    def expect_integer(self, value: int, what: str, size: int = 4) -> None:
        at = self.offset
        got = self.integer(size)
        if got != value:
            raise self.fail(f"{what}: expected {value}, found {got}", at)

    def tensor(self) -> np.ndarray:
        """A dlib tensor (version 2): num_samples, k, nr, nc, then float32 little-endian."""
        self.expect_integer(2, "tensor version")
        shape = tuple(self.integer(8) for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}")
        n = math.prod(shape)
        return np.frombuffer(self.take(4 * n), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self) -> tuple[int, ...]:
        """An alias tensor (version 1): a shape only."""
        self.expect_integer(1, "alias tensor version")
        return tuple(self.integer(8) for _ in range(4))

    def end(self) -> None:
        if self.offset != len(self.data):
            raise self.fail(f"{len(self.data) - self.offset} trailing bytes")
