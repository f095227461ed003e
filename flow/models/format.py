"""The model JSON format: what a component's model looks like on disk and in archives.

A model is a JSON object; numpy arrays are kept as ``{"__ndarray__": [...], "dtype": ...}``
so they come back as arrays of the same dtype, and numpy scalars as plain numbers.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


class _ModelEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return {"__ndarray__": o.tolist(), "dtype": str(o.dtype)}
        if isinstance(o, np.generic):
            return o.item()
        return super().default(o)


def _model_hook(obj: dict) -> Any:
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def model_view(text: str) -> dict[str, Any]:
    """A stored model as plain JSON (arrays as lists), for showing to people."""
    return json.loads(text, object_hook=lambda o: o["__ndarray__"] if "__ndarray__" in o else o)


def dump_model(model: dict[str, Any]) -> str:
    return json.dumps(model, cls=_ModelEncoder, indent=1, sort_keys=True)


def load_model_text(text: str) -> dict[str, Any]:
    return json.loads(text, object_hook=_model_hook)


def to_plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and numbers (keys keep their order)."""
    return json.loads(json.dumps(value, cls=_ModelEncoder))
