"""The SpotDraft client: paced, retried, recorded calls to SpotDraft's public API v2.1."""

from __future__ import annotations

from handlers.spotdraft.client import SpotDraftClient, path_segment
from handlers.spotdraft.credentials import SpotDraftCredentials
from handlers.spotdraft.errors import (
    ConfigurationError,
    OutcomeUnknownError,
    PermanentError,
    SpotDraftError,
    StorageError,
    TransientError,
    UnexpectedResponseError,
)
from handlers.spotdraft.exchange import DownloadedFile, Exchange, Result
from handlers.spotdraft.pacing import BudgetStats, RateBudget
from handlers.spotdraft.retry import RetryPolicy

__all__ = [
    "BudgetStats",
    "ConfigurationError",
    "DownloadedFile",
    "Exchange",
    "OutcomeUnknownError",
    "PermanentError",
    "RateBudget",
    "Result",
    "RetryPolicy",
    "SpotDraftClient",
    "SpotDraftCredentials",
    "SpotDraftError",
    "StorageError",
    "TransientError",
    "UnexpectedResponseError",
    "path_segment",
]
