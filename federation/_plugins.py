"""What the packages that own a wire type register with :mod:`federation.codec`.

The codec carries plain values itself; a package above this layer (Paillier, the
Instance of the algorithms) adds its types when it is imported, through the functions
here (re-exported by the codec), and declares a ``register()`` callable in the
entry-point group ``fedweave.codecs`` so that a receiver which has not imported it yet
loads it on the first unknown type or tag (:func:`load_plugins`, once per process).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from flow.core.errors import CodecError, FedweaveError
from flow.core.registry import Registry

Encoder = Callable[[Any, Any], None]
Decoder = Callable[[Any], Any]
#: ``hook(writer, items, shape)``: writes ``items``, a list (shape None) or a flattened
#: object array (a 1-D ndarray), columnar and returns True, or declines with False
VectorHook = Callable[[Any, Any, "tuple[int, ...] | None"], bool]

ENCODERS: dict[type, Encoder] = {}
DECODERS: dict[int, Decoder] = {}
VECTOR_HOOKS: list[VectorHook] = []
#: tags of the codec's own values, never given to a plugin (the codec fills it)
RESERVED: set[int] = set()
#: the ``fedweave.codecs`` entry points
PLUGINS: Registry[Callable[[], None]] = Registry("codecs", {})

_key_maker: Callable[[int], Any] | None = None
_by_type: dict[type, Encoder | None] = {}
_lock = threading.RLock()
_done = False
_loading = False
_errors: dict[str, str] = {}


def _same_owner(old: Any, new: Any) -> bool:
    """The same function made again (a module imported twice, reloaded) may replace itself;
    anything else is a clash."""
    def name(fn: Any) -> tuple[Any, Any]:
        return getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)

    return old is new or name(old) == name(new) != (None, None)


def register_type(cls: type, encoder: Encoder) -> None:
    """Send instances of ``cls`` (and of its subclasses) with ``encoder(writer, value)``."""
    old = ENCODERS.get(cls)
    if old is not None and not _same_owner(old, encoder):
        raise CodecError(f"type {cls.__qualname__} already has a wire encoder (from {old.__module__})")
    ENCODERS[cls] = encoder
    _by_type.clear()


def register_tag(tag: bytes, decoder: Decoder) -> None:
    """Decode the values that start with the one-byte ``tag`` with ``decoder(reader)``."""
    if len(tag) != 1:
        raise CodecError(f"a wire tag is one byte, got {tag!r}")
    old = DECODERS.get(tag[0])
    if tag[0] in RESERVED or (old is not None and not _same_owner(old, decoder)):
        raise CodecError(f"wire tag {tag!r} is already taken")
    DECODERS[tag[0]] = decoder


def register_vector(hook: VectorHook) -> None:
    """Let ``hook`` write lists and object arrays columnar (see :data:`VectorHook`)."""
    VECTOR_HOOKS[:] = [h for h in VECTOR_HOOKS if not _same_owner(h, hook)] + [hook]


def register_key(make: Callable[[int], Any]) -> None:
    """``make(n)``: the public key of modulus ``n`` listed in a stream's key table."""
    global _key_maker
    _key_maker = make


def encoder_for(t: type) -> Encoder | None:
    """The registered encoder of ``t`` or of its nearest registered base class."""
    if t not in _by_type:
        _by_type[t] = next((ENCODERS[b] for b in t.__mro__ if b in ENCODERS), None)
    return _by_type[t]


def key_maker() -> Callable[[int], Any] | None:
    if _key_maker is None:
        load_plugins()
    return _key_maker


def load_plugins() -> None:
    """Import every ``fedweave.codecs`` entry point and call it, once per process. A
    plugin that fails is remembered and named (:func:`note`) where it was needed."""
    global _done, _loading
    if _done:
        return
    with _lock:  # other threads wait for the end; the loading thread passes (a plugin may encode)
        if _done or _loading:
            return
        _loading = True
        try:
            for name in PLUGINS.names():
                try:
                    PLUGINS.get(name)()
                except (ImportError, AttributeError, TypeError, FedweaveError) as exc:
                    _errors[name] = f"{type(exc).__name__}: {exc}"
        finally:
            _done = True
            _by_type.clear()


def note() -> str:
    """What to add to an "unknown type/tag" error when a plugin failed to load."""
    if not _errors:
        return ""
    return "; codec plugins that failed to load: " + ", ".join(f"{k} ({v})" for k, v in _errors.items())
