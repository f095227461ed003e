"""``encrypt_param``: the Paillier settings of every component that encrypts (HeteroLR,
HeteroLinR, HeteroSecureBoost, HeteroFeatureBinning), with the bounds of a safe key.

A key shorter than :data:`SECURE_KEY_LENGTH` bits is refused unless the conf says
``"allow_short_key": true`` (tests and benchmarks, for speed); it is then reported as a
notice by ``flow job validate``/``submit`` (:meth:`EncryptParam.notices`). Below
:data:`MIN_KEY_LENGTH` nothing is allowed: :func:`~components.crypto.paillier.generate_keypair`
needs it, and at 256 bits one packed (g, h, count) slot of SecureBoost
(components/tree/packing.py: 2·41 value bits + 3·bits(samples) + 1) still fits for up
to 2**40 samples.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

#: the shortest key fedweave calls secure (~80-bit strength; FATE's default too)
SECURE_KEY_LENGTH = 1024
#: the shortest key accepted at all, with ``allow_short_key``
MIN_KEY_LENGTH = 256


class EncryptParam(BaseModel):
    """FATE's ``encrypt_param`` for Paillier; ``allow_short_key`` is fedweave's own switch."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    method: Literal["Paillier", "paillier"] = "Paillier"
    #: declared before key_length: its validator reads it
    allow_short_key: bool = False
    key_length: int = SECURE_KEY_LENGTH

    @field_validator("key_length")
    @classmethod
    def _bounded(cls, bits: int, info: ValidationInfo) -> int:
        """Even (two primes of equal size), >= 1024 unless short keys are allowed, >= 256 always."""
        if bits % 2:
            raise PydanticCustomError("key_length", "Paillier key_length must be even (two primes of "
                                      "key_length/2 bits each), got {bits}", {"bits": bits})
        allowed = info.data.get("allow_short_key", False)
        if bits < MIN_KEY_LENGTH or (bits < SECURE_KEY_LENGTH and not allowed):
            floor = MIN_KEY_LENGTH if allowed else SECURE_KEY_LENGTH
            hint = ("; set encrypt_param.allow_short_key: true to use it anyway (tests, benchmarks)"
                    if bits >= MIN_KEY_LENGTH else f" ({MIN_KEY_LENGTH} even with allow_short_key)")
            raise PydanticCustomError("key_length", "Paillier key_length must be at least {floor} bits, got "
                                      "{bits}{hint}", {"bits": bits, "floor": floor, "hint": hint})
        return bits

    def notices(self) -> dict[str, str]:
        """What a job should be told about these settings, by field (nothing for a secure key)."""
        if self.key_length >= SECURE_KEY_LENGTH:
            return {}
        return {"key_length": f"Paillier key of {self.key_length} bits is shorter than {SECURE_KEY_LENGTH} "
                              "bits and insecure (allowed by allow_short_key; for tests and benchmarks only)"}
