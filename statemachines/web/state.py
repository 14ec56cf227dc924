"""The small object every router of the web service receives (like `Runtime` for the engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statemachines.web.keys import KeyStore
from statemachines.web.metrics import Metrics, process_metrics

if TYPE_CHECKING:
    from statemachines.engine import Engine


@dataclass
class WebState:
    """What the routers share: the engine, the key store, the console's session secret, the
    public base URL (for callback links) and the process's metrics."""

    engine: Engine
    keys: KeyStore
    session_secret: bytes
    base_url: str | None
    metrics: Metrics = field(default_factory=process_metrics)
