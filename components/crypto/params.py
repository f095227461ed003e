"""``encrypt_param``: the encryption settings of every component that encrypts (HeteroLR,
HeteroLinR, HeteroSecureBoost, HeteroFeatureBinning...), with the bounds of a safe key.

``method`` names the scheme (FATE 2's ``he_param.kind``; any letter case): ``Paillier``
(the default, everywhere) or ``ou`` (Okamoto–Uchiyama, components/crypto/ou.py; the same
arithmetic at about a quarter of the cost; HeteroLR, HeteroLinR and HeteroSecureBoost). A
component runs the methods its model class lists in ``methods``; any other is refused at
validation in one line. HeteroLR and HeteroLinR (:class:`LinearEncryptParam`) also run
``ckks`` (components/crypto/ckks.py, fixed 128-bit parameters: ``key_length`` does not apply to it and is not checked).
``key_length`` is the size of the modulus n in bits: n = p·q for Paillier (so it must be
even), n = p²·q for OU; both rest on factoring n, so the same bounds apply.

A key shorter than :data:`SECURE_KEY_LENGTH` bits is refused unless the conf says
``"allow_short_key": true`` (tests and benchmarks, for speed); it is then reported as a
notice by ``flow job validate``/``submit`` (:meth:`EncryptParam.notices`). Below
:data:`MIN_KEY_LENGTH` nothing is allowed: :func:`~components.crypto.paillier.generate_keypair`
needs it, and at 256 bits one packed (g, h, count) slot of SecureBoost
(components/tree/packing.py: 2·41 value bits + 3·bits(samples) + 1) still fits for up
to 2**40 samples.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

#: the shortest key fedweave calls secure (~80-bit strength; FATE's default too)
SECURE_KEY_LENGTH = 1024
#: the shortest key accepted at all, with ``allow_short_key``
MIN_KEY_LENGTH = 256
#: the longest key accepted, in a conf or from a peer (a forged huge modulus would stall its receiver)
MAX_KEY_BITS = 8192
#: every method name a conf may give (lower case) -> how messages name it
METHODS = {"paillier": "Paillier", "ou": "ou (Okamoto-Uchiyama)", "ckks": "ckks"}
#: the methods whose key_length is the modulus size
KEYED = ("paillier", "ou")
#: where a method other than Paillier runs, for the message that refuses it elsewhere
RUNS_IN = {"ou": "HeteroLR, HeteroLinR and HeteroSecureBoost", "ckks": "HeteroLR and HeteroLinR"}


class EncryptParam(BaseModel):
    """FATE's ``encrypt_param``; ``allow_short_key`` is fedweave's own switch."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion
    #: the methods (lower case) the component using this model runs
    methods: ClassVar[tuple[str, ...]] = ("paillier",)

    #: declared before key_length: its validator reads it
    method: str = "Paillier"
    allow_short_key: bool = False
    key_length: int = SECURE_KEY_LENGTH

    @field_validator("method")
    @classmethod
    def _runnable(cls, method: str) -> str:
        """A known method that this component runs; anything else in one line."""
        name = method.lower()
        if name not in METHODS:
            raise PydanticCustomError("method", "unknown encrypt_param method '{m}'; one of {known}",
                                      {"m": method, "known": ", ".join(METHODS.values())})
        if name not in cls.methods:
            where = RUNS_IN.get(name, "no component yet")
            raise PydanticCustomError("method", "encrypt_param.method '{m}' is not supported by this component, "
                                      "which encrypts with {ours} only; '{m}' runs in {where}",
                                      {"m": method, "ours": " or ".join(METHODS[m] for m in cls.methods),
                                       "where": where})
        return method

    @property
    def scheme(self) -> str:
        """The method's registry name (components/crypto/schemes.py): lower case."""
        return self.method.lower()

    @field_validator("key_length")
    @classmethod
    def _bounded(cls, bits: int, info: ValidationInfo) -> int:
        """>= 1024 unless short keys are allowed, >= 256 always; even for Paillier (two primes
        of equal size)."""
        method = str(info.data.get("method", "paillier")).lower()
        if method not in KEYED:
            return bits
        if bits % 2 and method == "paillier":
            raise PydanticCustomError("key_length", "Paillier key_length must be even (two primes of "
                                      "key_length/2 bits each), got {bits}", {"bits": bits})
        if bits > MAX_KEY_BITS:
            raise PydanticCustomError("key_length", "{scheme} key_length must be at most {top} bits, got {bits}",
                                      {"bits": bits, "top": MAX_KEY_BITS, "scheme": _title(info)})
        allowed = info.data.get("allow_short_key", False)
        if bits < MIN_KEY_LENGTH or (bits < SECURE_KEY_LENGTH and not allowed):
            floor = MIN_KEY_LENGTH if allowed else SECURE_KEY_LENGTH
            hint = ("; set encrypt_param.allow_short_key: true to use it anyway (tests, benchmarks)"
                    if bits >= MIN_KEY_LENGTH else f" ({MIN_KEY_LENGTH} even with allow_short_key)")
            raise PydanticCustomError("key_length", "{scheme} key_length must be at least {floor} bits, got "
                                      "{bits}{hint}", {"bits": bits, "floor": floor, "hint": hint,
                                                       "scheme": _title(info)})
        return bits

    def notices(self) -> dict[str, str]:
        """What a job should be told about these settings, by field (nothing for a secure key)."""
        if self.key_length >= SECURE_KEY_LENGTH or self.scheme not in KEYED:
            return {}
        return {"key_length": f"{METHODS[self.scheme]} key of {self.key_length} bits is shorter than "
                              f"{SECURE_KEY_LENGTH} bits and insecure (allowed by allow_short_key; for tests and "
                              "benchmarks only)"}


class LinearEncryptParam(EncryptParam):
    """``encrypt_param`` of HeteroLR and HeteroLinR: Paillier, OU or CKKS (components/linear/hetero_cipher.py)."""

    methods: ClassVar[tuple[str, ...]] = ("paillier", "ou", "ckks")


class TreeEncryptParam(EncryptParam):
    """``encrypt_param`` of HeteroSecureBoost: Paillier or OU (FATE 2's ``he_param.kind`` for trees).
    OU's ciphertexts live modulo n, not n², so a host's bin sums and packing cost about a third
    and the guest's decryptions a sixth of Paillier's at the same key length
    (components/tree/packing.py packs fewer sums per ciphertext: its plaintexts are a third as long)."""

    methods: ClassVar[tuple[str, ...]] = ("paillier", "ou")


def _title(info: ValidationInfo) -> str:
    """The scheme a key_length message names (Paillier when the method itself was refused)."""
    return METHODS.get(str(info.data.get("method", "paillier")).lower(), "Paillier").split(" ")[0]
