"""The agent: per-model reconcilers, the periodic scan and the event consumer."""
