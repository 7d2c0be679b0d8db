#!/usr/bin/env python3
"""gen_gguf_fixtures.py — cross-implementation GGUF fixtures for xelm's reader and writer tests.

1. Writes tests/data/gguf/reference_v3.gguf with gguf-py's GGUFWriter (the reference GGUF
   implementation): every metadata value type (nested and string arrays included), a custom
   alignment, and small F32 / F16 / Q8_0 tensors with known bytes; plus reference_v3.json, the
   values xelm's reader must find (tests/test_gguf.cpp checks them).
2. Writes a few tiny valid files as the fuzzing seed corpus, tests/data/fuzz/gguf/.
3. If tests/data/gguf/xelm_written.gguf exists (written by xelm's GgufWriter: run
   `XELM_REGENERATE_FIXTURES=1 xelm_tests --gtest_filter='GgufFixture*'`), reads it back with gguf-py's
   GGUFReader and checks it holds the same metadata and tensors.

Usage: python3 tools/gen_gguf_fixtures.py   (from the repository root; needs numpy and gguf)
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "gguf"
REFERENCE = OUT_DIR / "reference_v3.gguf"
SIDECAR = OUT_DIR / "reference_v3.json"
XELM_WRITTEN = OUT_DIR / "xelm_written.gguf"
FUZZ_SEED_DIR = OUT_DIR.parent / "fuzz" / "gguf"
ALIGNMENT = 64

V = GGUFValueType
TYPE_NAMES = {
    V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32", V.INT32: "i32",
    V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array", V.UINT64: "u64",
    V.INT64: "i64", V.FLOAT64: "f64",
}

# (key, value type, value, array element type). Floats are exactly representable in f32 where f32.
METADATA = [
    ("general.architecture", V.STRING, "qwen2", None),  # GGUFWriter writes this key first itself
    ("test.u8", V.UINT8, 255, None),
    ("test.i8", V.INT8, -128, None),
    ("test.u16", V.UINT16, 65535, None),
    ("test.i16", V.INT16, -32768, None),
    ("test.u32", V.UINT32, 4294967295, None),
    ("test.i32", V.INT32, -2147483648, None),
    ("test.f32", V.FLOAT32, -1.25, None),
    ("test.bool_true", V.BOOL, True, None),
    ("test.bool_false", V.BOOL, False, None),
    ("test.string", V.STRING, "héllo, 世界", None),
    ("test.u64", V.UINT64, 18446744073709551615, None),
    ("test.i64", V.INT64, -9223372036854775808, None),
    ("test.f64", V.FLOAT64, 3.141592653589793, None),
    ("test.array_i32", V.ARRAY, [1, -2, 3], V.INT32),
    ("test.array_u64", V.ARRAY, [0, 18446744073709551615], V.UINT64),
    ("test.array_f32", V.ARRAY, [0.5, -0.25], V.FLOAT32),
    ("test.array_bool", V.ARRAY, [True, False, True], V.BOOL),
    ("test.array_string", V.ARRAY, ["a", "", "ccc"], V.STRING),
    ("test.array_nested", V.ARRAY, [[1, 2], [3], [4, 5, 6]], V.ARRAY),  # inner arrays are i32
]

Q8_0_BLOCK = bytes([0x00, 0x3C]) + bytes((i - 16) & 0xFF for i in range(32))  # d = 1.0, qs = -16..15
TENSORS = [
    # (name, numpy array in row-major (rows, cols) order, raw ggml type or None)
    ("t.f32", np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5, None),
    ("t.f16", np.array([[1.0, -2.0, 0.5]], dtype=np.float16), None),
    ("t.q8_0", np.frombuffer(Q8_0_BLOCK * 2, dtype=np.uint8).reshape(2, 34), GGMLQuantizationType.Q8_0),
]


def encode_value(value, vtype, element_type):
    """JSON form of a typed value: {"type": .., "value": ..} or {"type": "array", "element_type": .., "items": [..]}."""
    if vtype != V.ARRAY:
        return {"type": TYPE_NAMES[vtype], "value": value}
    if element_type == V.ARRAY:
        items = [encode_value(inner, V.ARRAY, V.INT32) for inner in value]
    else:
        items = [encode_value(item, element_type, None) for item in value]
    return {"type": "array", "element_type": TYPE_NAMES[element_type], "items": items}


def write_reference():
    writer = GGUFWriter(REFERENCE, arch="qwen2")
    writer.add_custom_alignment(ALIGNMENT)
    for key, vtype, value, element_type in METADATA[1:]:
        writer.add_key_value(key, value, vtype, sub_type=element_type)
    for name, array, raw_dtype in TENSORS:
        writer.add_tensor(name, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    metadata = [{"key": key, **encode_value(value, vtype, element_type)}
                for key, vtype, value, element_type in METADATA]
    metadata.insert(1, {"key": "general.alignment", "type": "u32", "value": ALIGNMENT})
    tensors = []
    for tensor in GGUFReader(REFERENCE).tensors:
        tensors.append({
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "shape": [int(d) for d in tensor.shape],  # ggml order
            "offset": int(tensor.data_offset),         # absolute file offset
            "hex": np.asarray(tensor.data).tobytes().hex(),
        })
    SIDECAR.write_text(json.dumps({"version": 3, "alignment": ALIGNMENT, "metadata": metadata,
                                   "tensors": tensors}, indent=1, ensure_ascii=False) + "\n")


def write_fuzz_seeds():
    """Small valid files covering the shapes the parser has to walk: metadata only, deep nesting,
    odd alignment, many tensor types, a v2 header."""
    FUZZ_SEED_DIR.mkdir(parents=True, exist_ok=True)
    (FUZZ_SEED_DIR / "reference_v3.gguf").write_bytes(REFERENCE.read_bytes())

    writer = GGUFWriter(FUZZ_SEED_DIR / "metadata_only.gguf", arch="qwen2")
    writer.add_key_value("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "bc"], V.ARRAY, sub_type=V.STRING)
    writer.add_key_value("deep", [[[1, 2], [3]], [[4]]], V.ARRAY, sub_type=V.ARRAY)
    writer.add_key_value("f64", 1e-300, V.FLOAT64)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    writer = GGUFWriter(FUZZ_SEED_DIR / "tensors_align8.gguf", arch="qwen2")
    writer.add_custom_alignment(8)
    block_bytes = {GGMLQuantizationType.Q4_0: 18, GGMLQuantizationType.Q4_K: 144, GGMLQuantizationType.Q6_K: 210,
                   GGMLQuantizationType.BF16: 2}
    for i, (qtype, n_bytes) in enumerate(block_bytes.items()):
        data = np.arange(n_bytes, dtype=np.uint8).reshape(1, n_bytes)
        writer.add_tensor(f"t{i}", data, raw_dtype=qtype)
    writer.add_tensor("f16", np.ones((2, 3), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    v2 = bytearray((FUZZ_SEED_DIR / "tensors_align8.gguf").read_bytes())
    v2[4:8] = (2).to_bytes(4, "little")
    (FUZZ_SEED_DIR / "tensors_align8_v2.gguf").write_bytes(bytes(v2))


def leaves(encoded):
    """Flattened leaf values and the type chain of an encoded value, as GGUFReader reports them."""
    if encoded["type"] != "array":
        return [encoded["value"]], [encoded["type"]]
    values, chain = [], ["array"]
    for i, item in enumerate(encoded["items"]):
        item_values, item_chain = leaves(item)
        values += item_values
        if i == 0:
            chain += item_chain
    return values, chain


def field_leaves(field):
    types = [TYPE_NAMES[t] for t in field.types]
    if types[-1] == "string":
        values = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    else:
        values = [field.parts[i].tolist()[0] for i in field.data]
    return values, types


def verify(path, expected):
    """Checks with gguf-py's reader that the file at `path` holds exactly the expected metadata and tensors."""
    reader = GGUFReader(path)
    problems = []
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    if keys != [m["key"] for m in expected["metadata"]]:
        problems.append(f"key order {keys}")
    for m in expected["metadata"]:
        field = reader.fields.get(m["key"])
        if field is None:
            problems.append(f"missing key {m['key']}")
            continue
        got, want = field_leaves(field), leaves(m)
        if got != want:
            problems.append(f"{m['key']}: got {got}, want {want}")
    tensors = {t.name: t for t in reader.tensors}
    for t in expected["tensors"]:
        got = tensors.get(t["name"])
        if got is None:
            problems.append(f"missing tensor {t['name']}")
            continue
        if (got.tensor_type.name, [int(d) for d in got.shape]) != (t["type"], t["shape"]):
            problems.append(f"tensor {t['name']}: {got.tensor_type.name} {list(got.shape)}")
        if np.asarray(got.data).tobytes().hex() != t["hex"]:
            problems.append(f"tensor {t['name']}: data differs")
        if got.data_offset % expected["alignment"] != 0:
            problems.append(f"tensor {t['name']}: offset {got.data_offset} not aligned")
    if len(reader.tensors) != len(expected["tensors"]):
        problems.append(f"{len(reader.tensors)} tensors")
    return problems


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_reference()
    expected = json.loads(SIDECAR.read_text())
    problems = verify(REFERENCE, expected)
    if problems:
        sys.exit(f"{REFERENCE}: gguf-py does not read back its own fixture: {problems}")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes) and {SIDECAR}")
    write_fuzz_seeds()
    print(f"wrote fuzz seeds to {FUZZ_SEED_DIR}")
    if not XELM_WRITTEN.exists():
        print(f"{XELM_WRITTEN} not found; generate it with XELM_REGENERATE_FIXTURES=1 xelm_tests "
              "--gtest_filter='GgufFixture*' and rerun to verify it")
        return
    problems = verify(XELM_WRITTEN, expected)
    if problems:
        sys.exit(f"{XELM_WRITTEN}: gguf-py reads it differently: " + "; ".join(problems))
    print(f"{XELM_WRITTEN}: gguf-py's GGUFReader reads back every key and tensor")


if __name__ == "__main__":
    main()
