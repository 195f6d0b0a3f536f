"""Reactions to events: each handler decides the next SpotDraft call and records its outcome.

- ``decisions``: the pure decision table (state + event -> commands), also run by replay;
- ``executor``: runs commands with the SpotDraft client and appends their outcomes;
- ``worker``: ``run_handlers``, the subscription that drives both, per contract in order;
- ``sink``: signed milestone notifications to the source system;
- ``reconciler``: ``run_reconciler`` / ``reconcile_once``, bounded status checks;
- ``parked``: work stopped on a permanent error, and the operator's retry;
- ``spotdraft``: the SpotDraft client.
"""
