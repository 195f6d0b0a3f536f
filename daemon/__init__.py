"""spotsync: the composition root (configuration, HTTP app, CLI, sandbox)."""

__version__ = "0.1.0"
