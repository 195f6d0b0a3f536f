"""The daemon's HTTP API (SPEC section 5): webhooks, intake, queries, health and metrics."""

from __future__ import annotations

from daemon.http.app import HttpConfig, create_app
from daemon.http.metrics import Metrics

__all__ = ["HttpConfig", "Metrics", "create_app"]
