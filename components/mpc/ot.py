"""Oblivious transfer (pure, no I/O): base OT, IKNP extension and 1-out-of-n.

Every protocol is a pair of state objects that turn the peer's last message into the next
one (numpy ``uint8`` arrays and ``bytes``, which the federation codec carries), so both sides
can run in one process in tests or across parties in a component. Semi-honest security.

* **Base OT**: Chou and Orlandi's "simplest OT" on Curve25519. The sender publishes
  ``A = aG``; for choice ``c`` the receiver sends ``B = bG + c·A``; the sender's keys are
  ``H(a·B)`` and ``H(a·(B - A))``, the receiver's ``H(b·A)``. ``cryptography``'s X25519 does the
  scalar multiplications that only need an x-coordinate; it cannot add points, so ``bG``,
  ``B`` and ``B - A`` are computed by a small Edwards25519 implementation on Python ints
  (components/mpc/ed25519.py)
  (one base OT per extension bit of security: 128 of them per extension).
* **Extension**: Ishai, Kilian, Nissim and Petrank: 128 base OTs with the roles swapped
  seed an AES-CTR generator; the chooser sends one 128 × m bit matrix and the sender
  masks each message pair with SHA-256 of its matrix rows (the correlation-robust hash).
* **1-out-of-n**: ``⌈log2 n⌉`` OTs of random keys per transfer; message ``i`` is masked with
  SHA-256 of the keys picked by the bits of ``i``, so the chooser can unmask only one.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from components.mpc.ed25519 import POINT, _add, _decode, _encode, _montgomery_u, _mul_base, _neg, _Point
from flow.core.errors import CryptoError

KAPPA = 128  # base OTs per extension: the computational security parameter
KEY = 16


def _clamped(secret: bytes) -> int:
    """The scalar X25519 uses for ``secret`` (RFC 7748 clamping)."""
    k = bytearray(secret)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return int.from_bytes(k, "little")


def _dh(key: X25519PrivateKey, point: _Point) -> bytes:
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(_montgomery_u(point)))
    except ValueError:  # a small-order point: the product would be zero
        raise CryptoError("malformed curve point: it lies in a small subgroup") from None


def _kdf(index: int, a: bytes, b: bytes, shared: bytes) -> bytes:
    return hashlib.sha256(b"fedweave-ot-base" + index.to_bytes(8, "little") + a + b + shared).digest()[:KEY]


def _points(arr: object, count: int, what: str) -> list[bytes]:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != (count, POINT):
        raise CryptoError(f"malformed {what}: expected a ({count}, {POINT}) byte array, "
                          f"got {getattr(arr, 'shape', type(arr).__name__)}")
    return [row.tobytes() for row in np.ascontiguousarray(arr)]


# ---------------------------------------------------------------- base OT (random keys)


class BaseSender:
    """Sender of ``count`` random OTs: ``setup()`` → A; ``keys(B)`` → (k0, k1), each (count, 16)."""

    def __init__(self, count: int):
        self.count = count
        secret = os.urandom(POINT)
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self._a = _mul_base(_clamped(secret))
        self.a_bytes = _encode(self._a)

    def setup(self) -> bytes:
        return self.a_bytes

    def keys(self, b_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        minus_a = _neg(self._a)
        k0, k1 = [], []
        for i, raw in enumerate(_points(b_points, self.count, "base OT reply")):
            b = _decode(raw)
            k0.append(_kdf(i, self.a_bytes, raw, _dh(self._key, b)))
            k1.append(_kdf(i, self.a_bytes, raw, _dh(self._key, _add(b, minus_a))))
        return _rows(k0, KEY), _rows(k1, KEY)


class BaseReceiver:
    """Receiver with one choice bit per OT: ``respond(A)`` → B (count, 32); ``keys()`` → (count, 16)."""

    def __init__(self, choices: Sequence[int] | np.ndarray):
        self.choices = np.asarray(choices, dtype=bool)
        self._keys: np.ndarray | None = None

    def respond(self, a_bytes: bytes) -> np.ndarray:
        if not isinstance(a_bytes, (bytes, bytearray)):
            raise CryptoError("malformed base OT setup: expected bytes")
        a = _decode(bytes(a_bytes))
        _montgomery_u(a)  # refuses the identity
        out, keys = [], []
        for i, c in enumerate(self.choices):
            secret = os.urandom(POINT)
            b = _mul_base(_clamped(secret))
            if c:
                b = _add(b, a)
            raw = _encode(b)
            out.append(raw)
            keys.append(_kdf(i, bytes(a_bytes), raw, _dh(X25519PrivateKey.from_private_bytes(secret), a)))
        self._keys = _rows(keys, KEY)
        return _rows(out, POINT)

    def keys(self) -> np.ndarray:
        if self._keys is None:
            raise CryptoError("base OT: respond() has not run")
        return self._keys


def _rows(rows: list[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width).copy()


# ---------------------------------------------------------------- IKNP extension


def prg(seed: np.ndarray, nbytes: int, block: int = 0) -> np.ndarray:
    """AES-CTR of ``seed`` from counter block ``block`` (each extension of a reused base OT reads on)."""
    enc = Cipher(algorithms.AES(seed.tobytes()), modes.CTR(block.to_bytes(16, "big"))).encryptor()
    return np.frombuffer(enc.update(bytes(nbytes)), dtype=np.uint8)


def aes_blocks(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """AES under ``key`` applied to each 16-byte block of ``blocks`` (same shape): a keyed
    permutation of independent blocks, as fixed-key hashes and PRFs use it, not encryption."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block per input
    return np.frombuffer(enc.update(np.ascontiguousarray(blocks).tobytes()), dtype=np.uint8).reshape(blocks.shape)


_M1, _M2, _M3 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)


def _flip8(x: np.ndarray) -> np.ndarray:
    """Transpose the 8×8 bit matrix in each little-endian uint64 (byte a = row a, bit b = column
    b) in place: three swaps of off-diagonal blocks (2×2, 4×4 then 4×4 halves)."""
    for mask, shift in ((_M1, _S1), (_M2, _S2), (_M3, _S3)):
        t = (x ^ (x >> shift)) & mask
        x ^= t ^ (t << shift)
    return x


def transpose(cols: np.ndarray, m: int) -> np.ndarray:
    """(bits, ⌈m/8⌉) packed columns → (m, bits/8) packed rows (bits a multiple of 8).

    Bytes are regrouped into 8×8 bit blocks, which :func:`_flip8` transposes as uint64s, so no
    array holds one byte per bit."""
    bits, nbytes = cols.shape
    blocks = cols.reshape(bits // 8, 8, nbytes).transpose(0, 2, 1).copy()  # a copy: flipped in place
    flipped = _flip8(blocks.view("<u8").reshape(bits // 8, nbytes)).view(np.uint8)
    return np.ascontiguousarray(flipped.reshape(bits // 8, nbytes * 8).T)[:m]


def untranspose(rows: np.ndarray, nbytes: int) -> np.ndarray:
    """(m, bits/8) packed rows → (bits, nbytes) packed columns: the inverse of :func:`transpose`
    (rows past m are zero)."""
    m, width = rows.shape
    padded = np.zeros((nbytes * 8, width), dtype=np.uint8)
    padded[:m] = rows
    blocks = np.ascontiguousarray(padded.T).reshape(width, nbytes, 8)
    flipped = _flip8(blocks.view("<u8").reshape(width, nbytes)).view(np.uint8).reshape(width, nbytes, 8)
    return np.ascontiguousarray(flipped.transpose(0, 2, 1)).reshape(width * 8, nbytes)


def pad(rows: np.ndarray, length: int, tweak: bytes = b"", index: np.ndarray | int | None = None) -> np.ndarray:
    """SHA-256(tweak, j, counter, row) expanded to ``length`` bytes per row: (m, length).
    j is the row's position, or ``index`` (one per row, or one int for all rows). The inputs
    are laid out in one array and hashed from a memoryview: no bytes object per row."""
    m, width = rows.shape
    blocks = -(-length // 32)
    head = len(tweak)
    buf = np.empty((m, head + 12 + width), dtype=np.uint8)
    buf[:, :head] = np.frombuffer(tweak, dtype=np.uint8)
    labels = np.arange(m) if index is None else np.broadcast_to(np.asarray(index), (m,))
    buf[:, head:head + 8] = labels.astype("<u8")[:, None].view(np.uint8)
    buf[:, head + 12:] = rows
    out = np.empty((m, blocks * 32), dtype=np.uint8)
    step, sha = buf.shape[1], hashlib.sha256
    for c in range(blocks):
        buf[:, head + 8:head + 12] = np.frombuffer(c.to_bytes(4, "little"), dtype=np.uint8)
        view = memoryview(buf.tobytes())
        digests = b"".join(sha(view[i * step:(i + 1) * step]).digest() for i in range(m))
        out[:, c * 32:(c + 1) * 32] = np.frombuffer(digests, dtype=np.uint8).reshape(m, 32)
    return out[:, :length]


def _tweak(round_: int) -> bytes:
    """The hash's tweak of one extension: rows of different extensions never share an input."""
    return b"iknp" + round_.to_bytes(8, "little")


def _messages(x: np.ndarray, m: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[0] != m:
        raise CryptoError(f"{what}: expected an ({m}, L) uint8 array, got {x.dtype} {x.shape}")
    return x


class ExtensionSender:
    """Sender of ``count`` OTs: ``respond(A)`` → B; ``transfer(U, x0, x1)`` → Y (2, count, L).

    ``again(count)`` readies a further extension on the same base OTs (the generators read on)."""

    def __init__(self, count: int):
        self.count = count
        self._s = np.unpackbits(np.frombuffer(os.urandom(KAPPA // 8), dtype=np.uint8), bitorder="little") == 1
        self._base = BaseReceiver(self._s)
        self._q: np.ndarray | None = None
        self._block = self._round = 0

    def again(self, count: int) -> None:
        self.count, self._q, self._round = count, None, self._round + 1

    def respond(self, a_bytes: bytes) -> np.ndarray:
        return self._base.respond(a_bytes)

    def absorb(self, u: np.ndarray) -> None:
        """The chooser's matrix U: rows q_j = t_j ⊕ r_j·s."""
        nbytes = -(-self.count // 8)
        if not isinstance(u, np.ndarray) or u.dtype != np.uint8 or u.shape != (KAPPA, nbytes):
            raise CryptoError(f"malformed OT extension matrix: expected ({KAPPA}, {nbytes}) bytes")
        seeds = self._base.keys()
        q = np.stack([prg(seeds[i], nbytes, self._block) for i in range(KAPPA)])
        self._block += -(-nbytes // 16)
        q ^= u * self._s[:, None].astype(np.uint8)
        self._q = transpose(q, self.count)

    def random_keys(self, length: int = KEY) -> tuple[np.ndarray, np.ndarray]:
        """Random OT: the pair of pads (H(q_j), H(q_j ⊕ s)), each (count, length)."""
        if self._q is None:
            raise CryptoError("OT extension: absorb() has not run")
        s, tweak = np.packbits(self._s, bitorder="little"), _tweak(self._round)
        return pad(self._q, length, tweak), pad(self._q ^ s, length, tweak)

    def rows(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(q_j, q_j ⊕ s) of the last extension and its round, for a caller's own robust hash."""
        if self._q is None:
            raise CryptoError("OT extension: absorb() has not run")
        return self._q, self._q ^ np.packbits(self._s, bitorder="little"), self._round

    def transfer(self, u: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        self.absorb(u)
        x0, x1 = _messages(x0, self.count, "messages 0"), _messages(x1, self.count, "messages 1")
        if x0.shape != x1.shape:
            raise CryptoError("messages 0 and 1 must have the same shape")
        p0, p1 = self.random_keys(x0.shape[1])
        return np.stack([x0 ^ p0, x1 ^ p1])


class ExtensionReceiver:
    """Chooser of ``len(choices)`` OTs: ``start()`` → A; ``extend(B)`` → U; ``receive(Y)`` → (count, L).

    ``again(choices)`` then ``extend()`` (no B) runs a further extension on the same base OTs."""

    def __init__(self, choices: Sequence[int] | np.ndarray):
        self.choices = np.asarray(choices, dtype=bool)
        self.count = len(self.choices)
        self._base = BaseSender(KAPPA)
        self._t: np.ndarray | None = None
        self._seeds: tuple[np.ndarray, np.ndarray] | None = None
        self._block = self._round = 0

    def start(self) -> bytes:
        return self._base.setup()

    def again(self, choices: Sequence[int] | np.ndarray) -> None:
        self.choices, self._t, self._round = np.asarray(choices, dtype=bool), None, self._round + 1
        self.count = len(self.choices)

    def extend(self, b_points: np.ndarray | None = None) -> np.ndarray:
        if b_points is not None:
            self._seeds = self._base.keys(b_points)
        if self._seeds is None:
            raise CryptoError("OT extension: the base OTs have not run")
        k0, k1 = self._seeds
        nbytes = -(-self.count // 8)
        r = np.packbits(self.choices, bitorder="little")
        t = np.stack([prg(k0[i], nbytes, self._block) for i in range(KAPPA)])
        u = t ^ np.stack([prg(k1[i], nbytes, self._block) for i in range(KAPPA)]) ^ r
        self._block += -(-nbytes // 16)
        self._t = transpose(t, self.count)
        return u

    def random_keys(self, length: int = KEY) -> np.ndarray:
        """Random OT: the chosen pad H(t_j) of each OT, (count, length)."""
        if self._t is None:
            raise CryptoError("OT extension: extend() has not run")
        return pad(self._t, length, _tweak(self._round))

    def rows(self) -> tuple[np.ndarray, int]:
        """t_j (= the sender's row of the chosen side) of the last extension and its round."""
        if self._t is None:
            raise CryptoError("OT extension: extend() has not run")
        return self._t, self._round

    def receive(self, y: np.ndarray) -> np.ndarray:
        if not isinstance(y, np.ndarray) or y.dtype != np.uint8 or y.ndim != 3 or y.shape[:2] != (2, self.count):
            raise CryptoError(f"malformed OT extension reply: expected (2, {self.count}, L) bytes")
        chosen = np.where(self.choices[:, None], y[1], y[0])
        return chosen ^ self.random_keys(y.shape[2])


# ---------------------------------------------------------------- 1-out-of-n


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _n_pads(keys: np.ndarray, index: np.ndarray, length: int) -> np.ndarray:
    """keys (count, k, bits, 16) of message ``index`` (count, k) → pads (count, k, length), each
    SHA-256 of (transfer, message index, keys)."""
    count, k = keys.shape[:2]
    where = np.stack(np.broadcast_arrays(np.arange(count)[:, None], index), axis=-1).astype("<u8")
    rows = np.concatenate([where.view(np.uint8).reshape(count * k, 16), keys.reshape(count * k, -1)], axis=1)
    return pad(rows, length, b"1-of-n", index=0).reshape(count, k, length)


class OneOfNSender:
    """Sender of ``count`` transfers of one of ``n`` messages each (messages: (count, n, L) uint8).

    ``respond(A)`` → B; ``transfer(U)`` → (Y, C): the key OTs' reply and the masked messages."""

    def __init__(self, messages: np.ndarray):
        messages = np.asarray(messages)
        if messages.dtype != np.uint8 or messages.ndim != 3 or messages.shape[1] < 2:
            raise CryptoError("1-out-of-n messages: expected a (count, n >= 2, L) uint8 array")
        self.messages = messages
        self.count, self.n, _ = messages.shape
        self.ell = _bits(self.n)
        self._ext = ExtensionSender(self.count * self.ell)

    def respond(self, a_bytes: bytes) -> np.ndarray:
        return self._ext.respond(a_bytes)

    def transfer(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.count * self.ell
        keys = np.frombuffer(os.urandom(2 * size * KEY), dtype=np.uint8).reshape(2, self.count, self.ell, KEY)
        y = self._ext.transfer(u, keys[0].reshape(size, KEY), keys[1].reshape(size, KEY))
        index_bits = (np.arange(self.n)[:, None] >> np.arange(self.ell)[None, :]) & 1  # (n, ell)
        picked = np.where(index_bits[None, :, :, None] == 1, keys[1][:, None], keys[0][:, None])
        index = np.broadcast_to(np.arange(self.n)[None, :], (self.count, self.n))
        return y, self.messages ^ _n_pads(picked, index, self.messages.shape[2])


class OneOfNReceiver:
    """Chooser of one index in [0, n) per transfer: ``start()`` → A; ``extend(B)`` → U;
    ``receive(Y, C)`` → (count, L)."""

    def __init__(self, choices: Sequence[int] | np.ndarray, n: int):
        self.choices = np.asarray(choices, dtype=np.int64)
        if n < 2 or self.choices.ndim != 1 or (len(self.choices) and (self.choices.min() < 0
                                                                     or self.choices.max() >= n)):
            raise CryptoError(f"1-out-of-n choices must lie in [0, {n}) with n >= 2")
        self.n, self.ell = n, _bits(n)
        bits = (self.choices[:, None] >> np.arange(self.ell)[None, :]) & 1
        self._ext = ExtensionReceiver(bits.reshape(-1))

    def start(self) -> bytes:
        return self._ext.start()

    def extend(self, b_points: np.ndarray) -> np.ndarray:
        return self._ext.extend(b_points)

    def receive(self, y: np.ndarray, c: np.ndarray) -> np.ndarray:
        count = len(self.choices)
        if not isinstance(c, np.ndarray) or c.dtype != np.uint8 or c.ndim != 3 or c.shape[:2] != (count, self.n):
            raise CryptoError(f"malformed 1-out-of-n reply: expected ({count}, {self.n}, L) bytes")
        keys = self._ext.receive(y).reshape(count, 1, self.ell, KEY)
        mine = c[np.arange(count), self.choices][:, None]
        return (mine ^ _n_pads(keys, self.choices[:, None], c.shape[2]))[:, 0]
