"""The operator's process-wide parts (store, engine, scaler), set once by `main.run` before kopf starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Runtime:
    """Holder the handlers read; empty until the operator starts."""

    store: Any = None
    engine: Any = None
    config: Any = None
    scale: Any = None
    namespaced: bool = False


RUNTIME = Runtime()
