"""How a downloaded version becomes a served one: the contract between the reconciler and a handler type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Loader(Protocol):
    def load(self, model: str, version: int, path: Path) -> Any:
        """Load a complete version folder; return what requests will use. Raise to refuse it."""

    def unload(self, model: str, version: int, value: Any) -> None:
        """`value` (what `load` returned) stopped serving: replaced by a reload, or its version removed.

        Called after the registry dropped it and before its folder is deleted.
        """

    def describe(self, value: Any) -> dict[str, Any]:
        """What `/models` shows of a loaded value besides its state (nothing, or TF Serving's version)."""


class PythonLoader:
    """The Python handler: `Handler.load_model(path)` returns the object `get_model` serves."""

    def __init__(self, load_model: Callable[[str], Any]) -> None:
        self._load_model = load_model

    def load(self, model: str, version: int, path: Path) -> Any:
        return self._load_model(str(path))

    def unload(self, model: str, version: int, value: Any) -> None:
        pass  # the registry dropped the last reference; in-flight requests finish on their own

    def describe(self, value: Any) -> dict[str, Any]:
        return {}
