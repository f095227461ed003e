"""The codec's bulk paths: the columnar encoding of Paillier ciphertext vectors
(components/crypto/paillier_wire.py) — exact round trips, the documented layout, a clear CodecError
for every truncated or garbled block — and large arrays sent and received with one copy."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from components.crypto.paillier import EncryptedNumber, PaillierPublicKey, _new, generate_keypair
from federation.codec import decode, decode_chunks, encode, encode_parts
from flow.core.errors import CodecError

# head 4 | key table (count 4, then length 4 + n) | "E" | key index 4 | count 4 | width 4
_VECTOR_AT = 4 + 4 + 4 + 1 + 12


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(256)


def _vector_offset(pk: PaillierPublicKey) -> int:
    return _VECTOR_AT + (pk.n.bit_length() + 7) // 8


def test_vector_round_trips_and_decrypts(keys):
    pk, sk = keys
    values = np.concatenate([np.linspace(-50, 50, 301), [0.0, 1e-9, -1e9]])
    cts = pk.encrypt_many(values)
    cts += [pk.encrypt(7), pk.encrypt(-3)]  # exponent 0 beside exponent 32
    out = decode(encode(cts))
    assert isinstance(out, list) and all(isinstance(x, EncryptedNumber) for x in out)
    assert [(x.ciphertext, x.exponent) for x in out] == [(x.ciphertext, x.exponent) for x in cts]
    assert all(x.public_key is out[0].public_key for x in out) and out[0].public_key == pk
    np.testing.assert_allclose(sk.decrypt_many(out), [*values, 7, -3], atol=1e-8)


def test_object_array_keeps_its_shape(keys):
    pk, sk = keys
    arr = np.empty((3, 4), dtype=object)
    arr[:] = np.array(pk.encrypt_many(np.arange(12.0)), dtype=object).reshape(3, 4)
    out = decode_chunks([encode(arr)])
    assert out.shape == (3, 4) and out.dtype == object
    np.testing.assert_allclose(sk.decrypt_many(out.ravel()), np.arange(12.0))


def test_block_is_fixed_width_big_endian_then_int64_exponents(keys):
    pk, _ = keys
    cts = pk.encrypt_many([1.0, 2.0, 3.0])
    data = encode(cts)
    width = (2 * pk.n.bit_length() + 7) // 8
    at = _vector_offset(pk)
    assert data[at - 13 : at] == b"E" + struct.pack("<III", 0, 3, width)
    block = b"".join(x.ciphertext.to_bytes(width, "big") for x in cts)
    assert data[at : at + 3 * width] == block
    assert np.frombuffer(data[at + 3 * width :], "<i8").tolist() == [x.exponent for x in cts]


def test_unexposed_results_are_rerandomised_once_when_sent(keys):
    pk, sk = keys
    a, b = pk.encrypt_many([1.5, 2.5]), pk.encrypt_many([0.25, 0.5])
    sums = [x + y for x, y in zip(a, b)]  # arithmetic results carry no fresh randomness yet
    raw = [int(x._c) for x in sums]
    out = decode(encode(sums))
    assert all(x.ciphertext != r for x, r in zip(out, raw))  # the sum itself never leaves
    assert [x.ciphertext for x in out] == [x.ciphertext for x in sums]  # what was sent is what is kept
    np.testing.assert_allclose(sk.decrypt_many(out), [1.75, 3.0])


def test_small_ciphertexts_with_leading_zero_bytes_round_trip(keys):
    pk, _ = keys
    cts = [EncryptedNumber(pk, c, 0) for c in (1, 2, 255, 256, pk.nsquare - 1)]
    out = decode(encode(cts))
    assert [x.ciphertext for x in out] == [1, 2, 255, 256, pk.nsquare - 1]


def _forged(pk: PaillierPublicKey, count: int = 3, item: int = 1, ciphertext: int | None = None,
            exponent: int | None = None) -> bytes:
    data = bytearray(encode(pk.encrypt_many(np.arange(float(count)))))
    width, at = (2 * pk.n.bit_length() + 7) // 8, _vector_offset(pk)
    if ciphertext is not None:
        data[at + item * width : at + (item + 1) * width] = ciphertext.to_bytes(width, "big")
    if exponent is not None:
        data[at + count * width + 8 * item : at + count * width + 8 * (item + 1)] = struct.pack("<q", exponent)
    return bytes(data)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"ciphertext": 0}, "ciphertext #1 out of range"),
        ({"item": 2, "ciphertext": -1}, "ciphertext #2 out of range"),  # n² itself, filled in below
        ({"item": 0, "ciphertext": -2}, "ciphertext #0 out of range"),  # all ones
        ({"exponent": -1}, "ciphertext #1: exponent -1 out of range"),
        ({"item": 2, "exponent": 10**6}, "ciphertext #2: exponent 1000000 out of range"),
    ],
)
def test_garbled_items_are_named(keys, change, match):
    pk, _ = keys
    width = (2 * pk.n.bit_length() + 7) // 8
    if change.get("ciphertext") == -1:
        change = {**change, "ciphertext": pk.nsquare}
    elif change.get("ciphertext") == -2:
        change = {**change, "ciphertext": (1 << (8 * width)) - 1}
    with pytest.raises(CodecError, match=match):
        decode(_forged(pk, **change))


def test_a_width_that_does_not_match_the_key_is_refused(keys):
    pk, _ = keys
    data = bytearray(_forged(pk))
    at = _vector_offset(pk)
    data[at - 4 : at] = struct.pack("<I", 8)
    with pytest.raises(CodecError, match="width 8 bytes does not match a 256-bit key"):
        decode(bytes(data))


def test_an_overstated_count_is_refused_before_any_allocation(keys):
    pk, _ = keys
    data = bytearray(_forged(pk))
    at = _vector_offset(pk)
    data[at - 8 : at - 4] = struct.pack("<I", 2**31)
    with pytest.raises(CodecError, match="truncated"):
        decode(bytes(data))


def test_every_truncation_of_a_vector_is_refused(keys):
    pk, _ = keys
    data = _forged(pk, count=2)
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:cut])


def test_random_garbling_fails_only_with_codec_error(keys):
    pk, _ = keys
    data = _forged(pk, count=4)
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(300):
        bad = bytearray(data)
        for pos in rng.integers(4, len(bad), size=rng.integers(1, 4)):
            bad[pos] = int(rng.integers(256))
        try:
            decode(bytes(bad))
        except CodecError:
            refused += 1
    assert refused > 0


def test_a_vector_that_does_not_fit_its_width_is_refused_on_encode(keys):
    pk, _ = keys
    x = pk.encrypt(1.0)
    huge = _new(pk, x.ciphertext << (4 * pk.n.bit_length()), 0, True)
    with pytest.raises(CodecError, match="ciphertext #1 of the vector does not fit its key"):
        encode([x, huge])


def test_decode_chunks_gives_writable_arrays_that_do_not_alias_the_chunks():
    arr = np.arange(10_000, dtype=np.float64)
    data = encode(arr)
    chunks = [bytearray(data[:1000]), bytearray(data[1000:])]
    out = decode_chunks([memoryview(c) for c in chunks])
    assert out.flags.writeable and out.flags.aligned and out.ctypes.data % 64 == 0
    out += 1
    assert decode(bytes(chunks[0] + chunks[1])).tolist() == arr.tolist()
    np.testing.assert_array_equal(out, arr + 1)


def test_encode_parts_views_large_arrays_and_joins_small_values():
    big = np.arange(100_000, dtype=np.float64)
    value = {"w": big, "meta": list(range(1000)), "s": "x"}
    parts = encode_parts(value)
    assert b"".join(parts) == encode(value)
    assert any(isinstance(p, memoryview) and np.shares_memory(np.frombuffer(p, np.uint8), big) for p in parts)
    many = {f"k{i}": float(i) for i in range(10_000)}
    assert len(encode_parts(many)) == 1 and encode_parts(many)[0] == encode(many)


def test_lists_of_floats_go_as_one_float64_block_and_come_back_exactly():
    values = [0.1, -0.0, float("inf"), float("-inf"), 1e-310, 2.0 ** 60 + 0.5, -3.25]
    raw = encode(values)
    assert raw[-(8 * len(values) + 5):-(8 * len(values))] == b"v" + struct.pack("<I", len(values))
    back = decode(raw)
    assert type(back) is list and all(type(v) is float for v in back)
    assert struct.pack(f"<{len(values)}d", *back) == struct.pack(f"<{len(values)}d", *values)  # bit for bit
    nan = decode(encode([float("nan"), 1.0]))
    assert nan[0] != nan[0] and nan[1] == 1.0
    # anything but plain floats keeps the general list: ints, bools, numpy scalars stay what they were
    for mixed in ([1.0, 2], [1.0, True], [np.float64(1.0), 2.0], [1.0]):
        assert b"v" + struct.pack("<I", len(mixed)) not in encode(mixed)
        assert [type(v) for v in decode(encode(mixed))] == [type(v) for v in mixed]


def test_a_truncated_or_overstated_float_block_is_refused():
    raw = encode([1.0, 2.0, 3.0])
    for cut in range(1, 25):
        with pytest.raises(CodecError, match="truncated"):
            decode(raw[:-cut])
    at = raw.index(b"v" + struct.pack("<I", 3))
    with pytest.raises(CodecError, match="truncated"):
        decode(raw[:at + 1] + struct.pack("<I", 2 ** 31) + raw[at + 5:])


def test_a_table_of_floats_goes_columnar():
    import pyarrow as pa

    from federation._rows import decode_rows, encode_rows

    pairs = [(f"id{i}", i / 7) for i in range(1000)]
    segment = encode_rows(pairs)
    assert pa.ipc.open_stream(pa.py_buffer(segment)).schema.metadata[b"fedweave.values"] == b"vector"
    assert decode_rows(segment) == pairs  # one vectorised pass instead of a codec value per cell
