"""Pure cryptography for fedweave (no I/O): Paillier for vertical LR, X25519 for ECDH PSI."""

from components.crypto.ecdh import EcdhCipher, hash_to_point
from components.crypto.paillier import (
    DEFAULT_PRECISION,
    EncryptedNumber,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)
from components.crypto.vector import encrypted_dot, encrypted_sum

__all__ = [
    "DEFAULT_PRECISION",
    "EcdhCipher",
    "EncryptedNumber",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "encrypted_dot",
    "encrypted_sum",
    "generate_keypair",
    "hash_to_point",
]
