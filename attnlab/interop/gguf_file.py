"""The GGUF container read directly: its key/value table, its tensor directory, and each tensor as a
view of a read-only memory map (nothing is copied until a weight is dequantized).

The ``gguf`` package's reader builds a numpy view for every part of every key/value entry; for
SmolLM2-135M's 49,152-token vocabulary and its merges that is ~250k views and about 3 s before any
weight is read, on every ``generate`` or ``fewshot`` start. The container itself is small to parse
(GGUF v2 and v3, little-endian, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):

    "GGUF"  version u32  tensor_count u64  kv_count u64
    kv_count x    key (string)  value type u32  value
                  string = length u64 + UTF-8 bytes; array = item type u32 + count u64 + items
    tensor_count x  name (string)  n_dims u32  dims u64 x n_dims (fastest first)  type u32  offset u64
    padding to ``general.alignment`` (32 unless given), then the tensors' data at their offsets

Value and tensor types are the ``gguf`` package's enums (``GGUFValueType``, ``GGMLQuantizationType``),
and a quantized tensor's bytes are shaped as its ``quant_shape_to_byte_shape`` says, so
``gguf.quants.dequantize`` takes them as it takes its own reader's. A file this cannot parse raises
:class:`GGUFFormatError`; :mod:`attnlab.interop.gguf` turns that into a one-line message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ALIGNMENT = 32
# Scalar value types by their GGUF number: struct format (little-endian).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_STRING, _ARRAY = 8, 9
# Tensor types whose data are plain numbers (the rest are bytes of quantized blocks).
_PLAIN = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8, "I16": np.int16,
          "I32": np.int32, "I64": np.int64}


class GGUFFormatError(ValueError):
    """The bytes are not a GGUF file this reader understands (truncated, corrupt, or version 1)."""


@dataclass(frozen=True)
class Field:
    """One key/value entry: its value type (``gguf.GGUFValueType``), for an array the items' type, and
    the value (a Python scalar, str, or list)."""

    kind: Any
    value: Any
    item_kind: Any = None

    def contents(self) -> Any:
        return self.value


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: ``shape`` lists dims fastest first (as the file; torch's shape is reversed),
    ``data`` is a read-only view of the map (numbers for F32/F16/..., uint8 block bytes otherwise)."""

    name: str
    tensor_type: Any
    shape: np.ndarray
    data_offset: int
    n_bytes: int
    data: np.ndarray


class _Cursor:
    def __init__(self, buffer: np.ndarray) -> None:
        self.buffer, self.at = buffer, 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if size < 0 or end > len(self.buffer):
            raise GGUFFormatError(f"the file ends at byte {len(self.buffer)}, before byte {end}")
        chunk = self.buffer[self.at:end].tobytes()
        self.at = end
        return chunk

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.scalar("<Q")).decode("utf-8")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        raise GGUFFormatError(f"unknown value type {kind}")

    def array(self, kind: int, count: int) -> list[Any]:
        if kind in _SCALARS and kind != 7:  # numbers: one view for the whole array
            dtype = np.dtype(_SCALARS[kind])
            return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).tolist()
        return [self.value(kind) for _ in range(count)]


class GGUFFile:
    """``fields`` (key -> :class:`Field`) and ``tensors`` (:class:`TensorInfo`, in file order) of the
    .gguf at ``path``; tensors are views of one read-only memory map."""

    def __init__(self, path: str | Path) -> None:
        import gguf  # the enums and block sizes; the caller has checked it is installed

        mapped = np.memmap(path, mode="r", dtype=np.uint8)
        cursor = _Cursor(mapped)
        try:
            if cursor.take(4) != b"GGUF":
                raise GGUFFormatError("no GGUF magic")
            version = cursor.scalar("<I")
            if version not in (2, 3):
                raise GGUFFormatError(f"GGUF version {version} (this reader reads versions 2 and 3)")
            n_tensors, n_fields = cursor.scalar("<Q"), cursor.scalar("<Q")
            self.fields: dict[str, Field] = {}
            for _ in range(n_fields):
                key, kind = cursor.string(), cursor.scalar("<I")
                if kind == _ARRAY:
                    item_kind, count = cursor.scalar("<I"), cursor.scalar("<Q")
                    self.fields[key] = Field(gguf.GGUFValueType(kind), cursor.array(item_kind, count),
                                             gguf.GGUFValueType(item_kind))
                else:
                    self.fields[key] = Field(gguf.GGUFValueType(kind), cursor.value(kind))
            directory = []
            for _ in range(n_tensors):
                name, n_dims = cursor.string(), cursor.scalar("<I")
                dims = [cursor.scalar("<Q") for _ in range(n_dims)]
                directory.append((name, dims, gguf.GGMLQuantizationType(cursor.scalar("<I")),
                                  cursor.scalar("<Q")))
        except (struct.error, UnicodeDecodeError, ValueError) as error:
            raise GGUFFormatError(str(error) or type(error).__name__) from None
        alignment = self.fields.get("general.alignment")
        align = DEFAULT_ALIGNMENT if alignment is None else int(alignment.value)
        if align <= 0 or align & (align - 1):
            raise GGUFFormatError(f"general.alignment {align} is not a power of two")
        start = -(-cursor.at // align) * align
        self.tensors = [self._tensor(mapped, start, entry, gguf) for entry in directory]

    @staticmethod
    def _tensor(mapped: np.ndarray, start: int, entry: tuple, gguf: Any) -> TensorInfo:
        name, dims, tensor_type, offset = entry
        shape = tuple(reversed(dims))  # numpy's order: slowest first
        elements = int(np.prod(dims, dtype=np.int64)) if dims else 1
        block, block_bytes = gguf.GGML_QUANT_SIZES[tensor_type]
        n_bytes = elements * block_bytes // block
        begin = start + offset
        raw = mapped[begin:begin + n_bytes]
        if len(raw) == n_bytes:  # a truncated file is named by the caller, from data_offset + n_bytes
            plain = _PLAIN.get(tensor_type.name)
            if plain is not None:
                data = raw.view(plain).reshape(shape)
            else:
                data = raw.reshape(gguf.quants.quant_shape_to_byte_shape(shape, tensor_type))
        else:
            data = raw
        return TensorInfo(name, tensor_type, np.array(dims, dtype=np.uint64), begin, n_bytes, data)
