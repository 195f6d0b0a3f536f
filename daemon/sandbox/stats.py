"""What the sandbox counted: API calls by endpoint and status, 429s, webhook fates."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.calls: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.rate_limited = 0
        # API requests being answered right now (latency, handler, a create's held 201).
        self.in_flight = 0
        self.webhooks: Counter[str] = Counter(
            {"sent": 0, "delivered": 0, "failed_attempts": 0, "dropped": 0, "duplicated": 0,
             "gave_up": 0, "reordered": 0}
        )

    def record(self, endpoint: str, status: int) -> None:
        self.calls[endpoint][status] += 1
        if status == 429:
            self.rate_limited += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": {
                endpoint: {str(status): n for status, n in sorted(by_status.items())}
                for endpoint, by_status in sorted(self.calls.items())
            },
            "rate_limited": self.rate_limited,
            "in_flight": self.in_flight,
            "webhooks": dict(sorted(self.webhooks.items())),
        }
