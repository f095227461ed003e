"""The wire codec: every carried type round-trips exactly; anything else is refused."""

from __future__ import annotations

import math
import os
import pickle
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

from backends.computing import local
from components.base import Instance
from components.crypto import paillier as paillier_mod
from federation import codec
from federation._rows import decode_rows, encode_rows, iter_row_segments
from federation.codec import decode, encode
from flow.core.errors import CodecError


@pytest.fixture
def paillier():
    """(module, public key, encrypt(list) -> ciphertexts, decrypt(list) -> values)."""
    pk, sk = paillier_mod.generate_keypair(256)
    return paillier_mod, pk, lambda xs: [pk.encrypt(float(x)) for x in xs], sk.decrypt_many


def same(a, b) -> bool:
    """Equal in value and type, recursively (numpy dtype and shape included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, Instance):
        return same(a.features, b.features) and same(a.label, b.label)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


PLAIN = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**1000 + 7, -(3**700),
    0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), "", "héllo ✓", b"", b"\x00\xff",
    [], (), {}, [1, [2, (3, "x")]], (1,), ("a", None, 2.5), {"a": 1, "b": [1.0, None]},
    {1: "int key", (2, 3): "tuple key", None: 0, b"k": 1},
]  # fmt: skip

ARRAYS = [
    np.array([True, False]), np.arange(7, dtype=np.int8), np.arange(6, dtype=np.uint64).reshape(2, 3),
    np.array([1.5, np.nan, -np.inf], dtype=np.float16), np.random.default_rng(0).random((3, 4)).astype(np.float32),
    np.random.default_rng(1).random((2, 3, 4)), np.array([1 + 2j, -3j]), np.arange(5, dtype=">i4"),
    np.array(["ab", "ç", ""]), np.array([b"x", b"yz"]), np.array(3.25), np.zeros((0,)), np.zeros((0, 3), np.int32),
    np.empty((2, 0, 4), dtype=bool), np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.arange(20.0)[::3],
]  # fmt: skip

SCALARS = [np.float64(1.25), np.float32(-2.5), np.int64(-7), np.uint8(255), np.bool_(True), np.complex64(1 - 1j)]


@pytest.mark.parametrize("value", PLAIN + ARRAYS + SCALARS, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_type(value):
    assert same(decode(encode(value)), value)


def test_nested_containers_of_everything():
    value = {
        "arrays": ARRAYS,
        "scalars": tuple(SCALARS),
        "instances": [Instance(np.arange(3.0), 1.0), Instance(np.zeros(0), None)],
        "deep": [[[[{"k": (2**70, np.arange(2))}]]]],
    }
    assert same(decode(encode(value)), value)


def test_decoded_arrays_are_writable_copies():
    buf = bytearray(encode(np.arange(4.0)))
    out = decode(buf)
    out += 1  # must not raise (read-only) nor touch the buffer
    assert out.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert decode(bytes(buf)).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_instance_round_trip():
    inst = Instance(np.array([0.5, -1.0]), label=1.0)
    out = decode(encode(inst))
    assert isinstance(out, Instance) and same(out, inst)


def test_ciphertexts_round_trip_and_decrypt(paillier):
    mod, pk, encrypt, decrypt = paillier
    values = [0.5, -2.25, 3.0, 1e6]
    cts = encrypt(values)
    single, vec = decode(encode(cts[0])), decode(encode(cts))
    arr = np.empty((2, 2), dtype=object)
    arr[:] = [cts[:2], cts[2:]]
    out_arr = decode(encode(arr))
    assert isinstance(single, mod.EncryptedNumber) and isinstance(vec, list) and out_arr.shape == (2, 2)
    for got, want in zip([single, *vec, *out_arr.ravel()], [cts[0], *cts, *cts]):
        assert (got.ciphertext, got.exponent, got.public_key.n) == (want.ciphertext, want.exponent, pk.n)
    assert vec[0].public_key is vec[-1].public_key  # one key object per stream
    assert decode(encode(pk)) == pk
    assert np.allclose(decrypt(vec), values)


def test_ciphertext_vector_carries_the_modulus_once(paillier):
    _, pk, encrypt, _ = paillier
    cts = encrypt(range(50))
    width = (2 * pk.n.bit_length() + 7) // 8
    n_bytes = (pk.n.bit_length() + 7) // 8
    size = len(encode(cts))
    assert size <= 50 * (width + 8) + n_bytes + 64
    # the same in a dict of tuples (not the vector fast path) still lists the key once
    assert len(encode({i: (c,) for i, c in enumerate(cts)})) < 50 * (width + 40) + n_bytes + 64


def test_mixed_keys_and_empty_ciphertext_arrays(paillier):
    mod, pk, encrypt, _ = paillier
    other = mod.generate_keypair(256)[0]
    a = encrypt([1.0])[0]
    b = mod.EncryptedNumber(other, 12345, a.exponent)
    out = decode(encode([a, b]))
    assert [x.public_key.n for x in out] == [pk.n, other.n]
    empty = decode(encode(np.empty((0, 2), dtype=object)))
    assert empty.shape == (0, 2) and empty.dtype == object


def test_out_of_range_ciphertext_is_refused(paillier):
    _, pk, encrypt, _ = paillier
    data = bytearray(encode(encrypt([1.0])))  # a vector: ... | ciphertext (width bytes) | exponent (8)
    width = (2 * pk.n.bit_length() + 7) // 8
    data[-8 - width : -8] = (pk.n * pk.n).to_bytes(width, "big")
    with pytest.raises(CodecError, match="out of range"):
        decode(bytes(data))


def test_table_needs_a_session():
    with local.LocalSession(partitions=3, workers=1) as session:
        table = session.parallelize([(i, float(i)) for i in range(30)], 3)
        data = encode({"t": table})
        out = decode(data, session)["t"]
        assert out.partitions == 3 and sorted(out.collect()) == sorted(table.collect())
        with pytest.raises(CodecError, match="session"):
            decode(data)


class Custom:
    pass


@pytest.mark.parametrize("value", [object(), {1, 2}, 1 + 2j, Custom(), [1, Custom()], {"k": frozenset()}])
def test_unknown_type_is_refused(value):
    with pytest.raises(CodecError, match="cannot send a value of type"):
        encode(value)


def test_refusal_names_the_type():
    with pytest.raises(CodecError, match=r"type test_codec\.Custom"):
        encode({"nested": [Custom()]})
    with pytest.raises(CodecError, match="type set"):
        encode([{1}])


@pytest.mark.parametrize(
    "arr",
    [np.array([1, "a"], dtype=object), np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), np.array(["2020"], "M8[D]")],
)
def test_unsafe_numpy_dtypes_are_refused(arr):
    with pytest.raises(CodecError, match="dtype"):
        encode(arr)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_streams_are_refused(protocol, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    for payload in ([1, "a", {"b": 2.0}], Evil()):
        with pytest.raises(CodecError, match="pickle"):
            decode(pickle.dumps(payload, protocol=protocol))
    assert not marker.exists()


def _forge(*parts: bytes) -> bytes:
    return codec.MAGIC + bytes([codec.VERSION]) + struct.pack("<I", 0) + b"".join(parts)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a fedweave"),
        (b"GARBAGE!", "not a fedweave"),
        (codec.MAGIC + bytes([codec.VERSION + 1]) + b"\0" * 8, "version"),
        (_forge(b"Z"), "unknown tag"),
        (_forge(b"i\x01\x02"), "truncated"),
        (encode([1, 2]) + b"\0", "unexpected bytes"),
        (_forge(b"l" + struct.pack("<I", 2**31)), "truncated"),
        (_forge(b"a\x02|O\x01" + struct.pack("<QQ", 1, 8) + b"\0" * 8), "dtype"),
        (_forge(b"a\x03<f8\x01" + struct.pack("<QQ", 4, 8) + b"\0" * 8), "needs 32 bytes"),
        (_forge(b"a\x05<i4,x\x00" + struct.pack("<Q", 0)), "dtype"),
        (_forge(b"a\x03<f8\x02" + struct.pack("<QQQ", 0, 2**64 - 1, 0)), "invalid array"),
        (_forge(b"d" + struct.pack("<I", 1) + b"l" + struct.pack("<I", 0) + b"N"), "hashable"),
        (_forge(b"u" + struct.pack("<I", 2) + b"\xff\xfe"), "utf-8"),
        (_forge(b"e" + struct.pack("<I", 0)), "public key #0"),
    ],
)
def test_malformed_streams_are_refused(data, match):
    with pytest.raises(CodecError, match=match):
        decode(data)


def test_every_truncation_is_refused(paillier):
    _, _, encrypt, _ = paillier
    data = encode({"a": [1, 2**80, "s", np.arange(3.0)], "c": encrypt([1.0, 2.0]), "i": Instance(np.ones(2), 0.0)})
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:cut])


def test_corrupted_streams_fail_only_with_codec_error():
    data = encode({"a": [1, 2.5, "s", (None, True)], "b": np.arange(6).reshape(2, 3), "c": {"x": b"yz"}})
    rng = random.Random(7)
    for _ in range(500):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(4, len(bad))] = rng.randrange(256)
        try:
            decode(bytes(bad))
        except CodecError:
            pass


def test_nesting_depth_is_bounded():
    deep: list = []
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CodecError, match="nested deeper"):
        encode(deep)
    forged = _forge((b"l" + struct.pack("<I", 1)) * (codec.MAX_DEPTH + 5) + b"N")
    with pytest.raises(CodecError, match="nested deeper"):
        decode(forged)


def test_row_segments_round_trip_within_budget():
    rows = [(f"id{i}", {"x": np.full(4, float(i)), "y": i % 3}) for i in range(2000)]
    segments = list(iter_row_segments(rows, 16_384))
    assert len(segments) > 5 and all(len(s) <= 16_384 for s in segments)
    back = [kv for s in segments for kv in decode_rows(s)]
    assert same(back, rows)
    assert decode_rows(encode_rows([])) == []


def test_row_segments_list_each_paillier_key_once(paillier):
    _, pk, encrypt, _ = paillier
    cts = encrypt(range(40))
    data = encode_rows(list(enumerate(cts)))
    width = (2 * pk.n.bit_length() + 7) // 8
    assert len(data) < 40 * (width + 40) + 4 * pk.n.bit_length() // 4 + 1024
    back = decode_rows(data)
    assert [(k, v.ciphertext) for k, v in back] == [(k, v.ciphertext) for k, v in enumerate(cts)]


def test_rows_with_a_foreign_schema_are_refused():
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    table = pa.table({"key": [1, 2], "value": ["a", "b"]})
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with pytest.raises(CodecError, match="schema"):
        decode_rows(sink.getvalue().to_pybytes())
    with pytest.raises(CodecError, match="Arrow"):
        decode_rows(b"not arrow at all")


def test_streams_ending_in_a_pickle_stop_byte_still_decode():
    """Regression: a uint8 payload whose last byte is '.' was once refused as a pickle."""
    import numpy as np

    from federation.codec import decode, encode

    for last in range(256):
        arr = np.arange(64, dtype=np.uint8)
        arr[-1] = last
        np.testing.assert_array_equal(decode(encode(arr)), arr)


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_receiver_decodes_before_importing_the_owning_packages(tmp_path, paillier):
    """Paillier values and Instances come back in a process that has imported only the
    codec: the ``fedweave.codecs`` entry points are loaded on the first unknown tag."""
    _, pk, encrypt, _ = paillier
    arr = np.empty(2, dtype=object)
    arr[:] = encrypt([3.0, 4.0])
    sent = {"v": encrypt([1.0, 2.0]), "e": encrypt([5.0])[0], "a": arr, "k": pk, "i": Instance(np.ones(2), 1.0)}
    (tmp_path / "s.bin").write_bytes(encode(sent))
    res = _fresh(
        "import sys\n"
        "from federation.codec import decode\n"
        "assert not [m for m in sys.modules if m.startswith('components')]\n"
        f"out = decode(open({str(tmp_path / 's.bin')!r}, 'rb').read())\n"
        "print(sorted((k, type(v).__name__) for k, v in out.items()))\n"
        "print(out['v'][1].ciphertext, out['a'].shape, out['k'].n)\n"
    )
    assert res.returncode == 0, res.stderr
    kinds, numbers = res.stdout.splitlines()
    assert kinds == str(sorted({"v": "list", "e": "EncryptedNumber", "a": "ndarray", "k": "PaillierPublicKey",
                                "i": "Instance"}.items()))
    assert numbers == f"{sent['v'][1].ciphertext} (2,) {pk.n}"


def test_the_federation_package_imports_no_components():
    res = _fresh(
        "import importlib, pkgutil, sys, federation\n"
        "for m in pkgutil.iter_modules(federation.__path__):\n"
        "    try:\n"
        "        importlib.import_module('federation.' + m.name)\n"
        "    except ImportError as exc:\n"
        "        if (exc.name or '').startswith(('federation', 'components')):\n"
        "            raise\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'components'])\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_tags_and_types_have_one_owner():
    with pytest.raises(CodecError, match="already taken"):
        codec.register_tag(b"i", lambda r: None)  # the codec's own int
    with pytest.raises(CodecError, match="already taken"):
        codec.register_tag(b"e", lambda r: None)  # Paillier's ciphertext
    with pytest.raises(CodecError, match="already has a wire encoder"):
        codec.register_type(paillier_mod.EncryptedNumber, lambda w, x: None)
    with pytest.raises(CodecError, match="one byte"):
        codec.register_tag(b"ab", lambda r: None)
    from components.crypto import paillier_wire

    paillier_wire.register()  # registering again is harmless
    pk = paillier_mod.generate_keypair(256)[0]
    assert decode(encode(pk)) == pk


def _columnar(data: bytes) -> bool:
    import pyarrow as pa

    return (pa.ipc.open_stream(pa.py_buffer(data)).schema.metadata or {}).get(b"fedweave.values") == b"vector"


def test_ciphertext_rows_go_columnar_and_come_back_equal(paillier):
    _, pk, encrypt, _ = paillier
    cts = encrypt([i / 7 - 3 for i in range(300)])
    rows = [(f"id{i}", c) for i, c in enumerate(cts)]
    segments = list(iter_row_segments(rows, 16_384))
    assert len(segments) > 1 and all(len(s) <= 16_384 for s in segments) and all(map(_columnar, segments))
    back = [kv for s in segments for kv in decode_rows(s)]
    assert [(k, v.ciphertext, v.exponent) for k, v in back] == [(k, v.ciphertext, v.exponent) for k, v in rows]
    mixed = rows[:5] + [("plain", 1.5)]
    data = encode_rows(mixed)
    assert not _columnar(data)
    assert [k for k, _ in decode_rows(data)] == [k for k, _ in mixed]


def test_forged_columnar_segments_are_refused(paillier):
    import pyarrow as pa

    _, _, encrypt, _ = paillier
    data = encode_rows([(i, c) for i, c in enumerate(encrypt(range(4)))])
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    meta = table.schema.metadata
    for values, match in (([table.column(1)[0].as_py(), b"", b"x", b""], "outside its first cell"),
                          ([table.column(1)[0].as_py(), b"", b""], "4 values for 3 keys")):
        keys = table.column(0).to_pylist()[: len(values)]
        schema = pa.schema([("key", pa.binary()), ("value", pa.binary())], metadata=meta)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as w:
            w.write_batch(pa.record_batch([pa.array(keys, pa.binary()), pa.array(values, pa.binary())], schema))
        with pytest.raises(CodecError, match=match):
            decode_rows(sink.getvalue().to_pybytes())
