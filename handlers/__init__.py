"""Reactions to events: each handler decides the next SpotDraft call and records its outcome."""
