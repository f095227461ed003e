"""ECDH PSI over Curve25519 (``intersect_method: "ecdh"``, the default); the exchange is
:class:`~components.psi._commutative.CommutativeProtocol`'s."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import field_validator

from components.crypto.ecdh import ECDH_HASHES, POINT_BYTES, EcdhCipher
from components.psi._commutative import CommutativeProtocol
from components.psi._protocol import MethodParams, hash_method


class EcdhParams(MethodParams):
    """FATE 1.x ``ecdh_params``; ``salt`` is prefixed to every id before hashing."""

    salt: str = ""
    hash_method: str = "sha256"
    curve: Literal["curve25519"] = "curve25519"

    @field_validator("hash_method")
    @classmethod
    def _hash(cls, value: str) -> str:
        return hash_method(value, "ecdh_params.hash_method", ECDH_HASHES, "FATE's ECDH hashes are")


class EcdhProtocol(CommutativeProtocol):
    params_field = "ecdh_params"
    params_model = EcdhParams
    what = "ECDH point"

    def _cipher(self, secret: str | None = None) -> EcdhCipher:
        return EcdhCipher(None if secret is None else bytes.fromhex(secret), hash_method=self.params.hash_method)

    def _new_secret(self) -> str:
        return os.urandom(POINT_BYTES).hex()

    def _width(self) -> int:
        return POINT_BYTES
