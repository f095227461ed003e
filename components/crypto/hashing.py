"""The hash functions PSI hashes ids with, by FATE's names: which this Python can compute."""

from __future__ import annotations

import hashlib


def hash_available(name: str, known: tuple[str, ...]) -> bool:
    """``name`` is one of ``known`` and this Python's OpenSSL computes it (SM3 may lack)."""
    return name in known and (name != "sm3" or "sm3" in hashlib.algorithms_available)
