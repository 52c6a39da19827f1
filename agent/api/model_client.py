"""`model_client` for the Python handler: Cortex 0.35's `get_model(model_name, model_version)`."""

from __future__ import annotations

from typing import Any

from agent.engine.registry import Lookup


class ModelClient:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup  # the cache replaces the registry here when caching is on

    def get_model(self, model_name: str | None = None, model_version: int | str = "latest") -> Any:
        """What `load_model` returned for that model and version ("latest", an int or a numeric string).

        Raises ModelNotFoundError (answered with 404) for an unknown model or version, and, with caching,
        ModelUnavailableError (503) when its load failed or outlasts `cold_load_deadline`.
        """
        return self.lookup.served(model_name, model_version).value
