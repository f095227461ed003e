"""What every PSI method implements, so Intersection picks one from a registry by name.

A method runs between the guest and each host separately. On the guest it returns, per
host, which of the guest's ids matched which of that host's ids (guest index -> host
position); Intersection then keeps the ids every host shares and tells each host its
positions of that final set. Nothing else about the method leaks into Intersection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from components.base import Context
from components.crypto.hashing import hash_available
from federation.api import Party
from flow.core.errors import ComponentError


class MethodParams(BaseModel):
    """Base of the per-method parameter blocks (``rsa_params`` ...): unknown names are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion


class PsiProtocol(ABC):
    """One PSI method; ``params`` is its block from the Intersection params (defaults if absent)."""

    #: the Intersection parameter that holds this method's settings
    params_field: ClassVar[str]
    params_model: ClassVar[type[MethodParams]]

    def __init__(self, params: MethodParams | None, join_role: str = "guest"):
        self.params = params if params is not None else self.params_model()
        self.join_role = join_role

    @abstractmethod
    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        """Run with every host; per host (in order), guest index -> host position of shared ids."""

    @abstractmethod
    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        """This host's share of the method (the guest learns the matches, not the host)."""

    # FATE 1.x's intersection cache (see components.psi._cache): rsa, dh and ecdh have one

    def _no_cache(self, ctx: Context) -> ComponentError:
        return ComponentError(f"{ctx.component}: not supported: intersection cache with {self.params_field}")

    def guest_make_cache(self, ctx: Context, hosts: list[Party]) -> dict[str, Any]:
        """run_cache: the guest's cached part (per host), from the hosts' own half."""
        raise self._no_cache(ctx)

    def host_make_cache(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> dict[str, Any]:
        """run_cache: this host's cached part (cache id, secret, ids)."""
        raise self._no_cache(ctx)

    def guest_with_cache(self, ctx: Context, ids: Sequence[Any], hosts: list[Party],
                         body: dict[str, Any]) -> list[dict[int, int]]:
        """input.cache: as :meth:`guest`, host positions being those of the cached host ids."""
        raise self._no_cache(ctx)

    def host_with_cache(self, ctx: Context, body: dict[str, Any], guest: list[Party]) -> None:
        """input.cache: answer the guest with the cached secret."""
        raise self._no_cache(ctx)


def rows_to_array(rows: Sequence[bytes], width: int) -> np.ndarray:
    """Fixed-width byte strings as a (n, width) uint8 array: the codec's wire form for them."""
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width)


def array_to_rows(arr: Any, width: int, component: str, what: str) -> list[bytes]:
    """Inverse of :func:`rows_to_array`, refusing anything but an (n, width) uint8 array."""
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != width:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise ComponentError(f"{component}: malformed {what}: expected an (n, {width}) byte array, got {shape}")
    arr = np.ascontiguousarray(arr)
    return [row.tobytes() for row in arr]


def match(mine: Sequence[bytes], theirs: Sequence[bytes]) -> dict[int, int]:
    """Positions of equal values: my index -> their position."""
    index = {v: j for j, v in enumerate(theirs)}
    return {i: index[v] for i, v in enumerate(mine) if v in index}


def hash_method(value: str, field: str, known: tuple[str, ...], whose: str) -> str:
    """A PSI method's ``hash_method``, lower-cased, if it is one of ``known`` and this Python
    computes it; else one "not supported" line naming ``field``."""
    name = value.lower()
    if hash_available(name, known):
        return name
    raise PydanticCustomError("not_supported", "not supported: {field} '{value}' ({whose} {known}{sm3})",
                              {"field": field, "value": value, "whose": whose, "known": ", ".join(known),
                               "sm3": "; this Python's OpenSSL has no SM3" if name == "sm3" else ""})
