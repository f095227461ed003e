"""Diffie-Hellman PSI (FATE 1.x ``intersect_method: "dh"``): commutative encryption in the
quadratic-residue group of an RFC 3526 MODP prime (:mod:`components.crypto.dh`); the
exchange is :class:`~components.psi._commutative.CommutativeProtocol`'s.

``key_length`` is FATE's prime size: fedweave takes the smallest RFC 3526 group of at
least that many bits and at least 2048 (FATE's default 1024 runs in the 2048-bit group:
the intersection is the same, the security better); above 4096 is refused.
"""

from __future__ import annotations

import secrets

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from components.crypto.dh import DH_HASHES, EXPONENT_BITS, DhCipher, group_bits
from components.psi._commutative import CommutativeProtocol
from components.psi._protocol import MethodParams, hash_method


class DhParams(MethodParams):
    """FATE 1.x ``dh_params``; ``salt`` is prefixed to every id before hashing."""

    salt: str = ""
    hash_method: str = "sha256"
    key_length: int = Field(1024, ge=1024)

    @field_validator("hash_method")
    @classmethod
    def _hash(cls, value: str) -> str:
        return hash_method(value, "dh_params.hash_method", DH_HASHES, "fedweave's DH hashes ids with one of")

    @field_validator("key_length")
    @classmethod
    def _key(cls, value: int) -> int:
        if value > 4096:
            raise PydanticCustomError("not_supported", "not supported: dh_params.key_length {value} (at most 4096, "
                                      "the largest RFC 3526 group)", {"value": value})
        return value

    def notices(self) -> dict[str, str]:
        bits = group_bits(self.key_length)
        if bits != self.key_length:
            return {"key_length": f"{self.key_length} runs in the {bits}-bit RFC 3526 group (same intersection)"}
        return {}


class DhProtocol(CommutativeProtocol):
    params_field = "dh_params"
    params_model = DhParams
    what = "DH value"

    def _cipher(self, secret: str | None = None) -> DhCipher:
        return DhCipher(group_bits(self.params.key_length), self.params.hash_method,
                        None if secret is None else int(secret, 16))

    def _new_secret(self) -> str:
        return format(secrets.randbits(EXPONENT_BITS - 1) | (1 << (EXPONENT_BITS - 1)), "x")

    def _width(self) -> int:
        return (group_bits(self.params.key_length) + 7) // 8
