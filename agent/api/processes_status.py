"""The replica's answers with serving processes (`processes_per_replica`): what any of them says to
`/readyz`, `/models`, `/metrics` and `/info`, computed by the agent, which asks itself and the
serving processes' records. The agent's process has no HTTP server: each serving process asks it
over its channel (agent.api.serving_process)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.api.http import AgentStatus
from agent.api.shutdown import Shutdown
from agent.domain.caching import latest_candidates, resolve
from agent.domain.errors import ModelNotFoundError, ModelUnavailableError
from agent.domain.index import ModelState
from agent.domain.processes import Touched, with_processes
from agent.engine.agent import Agent
from agent.engine.serving_processes import ServingProcesses
from agent.metrics import Metrics, ServingProcessesCollector


class ProcessesStatus:
    def __init__(
        self,
        agent: Agent,
        processes: ServingProcesses,
        metrics: Metrics,
        shutdown: Shutdown,
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self._agent = agent
        self._processes = processes
        self._metrics = metrics
        self._status = AgentStatus(agent, metrics, shutdown, info, ready=self._ready)
        self._became_ready = False
        self._telling = threading.Lock()
        metrics.track_replica_state(lambda: (agent.index.snapshot(), self.unready_because() is None))
        metrics.registry.register(ServingProcessesCollector(self._process_counts))
        processes.answer = self.answer
        processes.on_change = self.tell_processes
        agent.when_ready(self.tell_processes)
        if agent.cache is not None:  # each process resolves "latest" as the agent does, and says what it used
            agent.index.listen(self._latest)
            processes.on_touched = self._touched

    def _ready(self) -> bool:
        """Ready once the agent's initial load is done and every process loaded it and serves; a process
        restarted later does not make the replica unready (the others serve meanwhile)."""
        if not self._became_ready:
            self._became_ready = self._agent.ready and self._processes.all_started
        return self._became_ready

    def tell_processes(self) -> None:
        with self._telling:  # what is told is what holds now: a reason computed before another's is not sent after it
            self._processes.set_readiness(self.unready_because())

    def unready_because(self) -> str | None:
        reason = self._status.unready_because()
        if reason is not None and self._agent.ready:  # the agent is done: say which process is not
            reason = "; ".join(self._processes.not_serving()) or reason
        return reason

    def models(self, model: str | None) -> dict[str, Any]:
        return with_processes(self._agent.index.snapshot(model), self._processes.views(), self._processes.paths())

    def exposition(self) -> bytes:
        return self._metrics.exposition()

    def info(self) -> dict[str, Any]:
        return self._status.info()

    def answer(self, what: str, argument: Any) -> Any:
        """A serving process's question (agent.domain.processes.Ask)."""
        if what == "models":
            return self.models(argument)
        if what == "metrics":
            return self.exposition()
        if what == "info":
            return self.info()
        if what == "load":
            model, version = argument
            return self._load(model, version)
        raise ValueError(f"expected a question models, metrics or info, found {what!r}")

    def _load(self, model: str | None, version: int | str | None) -> dict[str, Any]:
        """With caching, a request a process could not serve from memory: load the version into every
        process (the agent's cache: single flight, its deadline) and say which version it was."""
        try:
            return {"version": self._agent.lookup.served(model, version).version}
        except ModelNotFoundError as error:
            return {"error": "not found", "message": str(error)}
        except ModelUnavailableError as error:
            return {"error": "unavailable", "message": str(error)}

    def _touched(self, touched: Touched) -> None:
        """A process's hits: each entry used becomes the most recent (and counts one hit), and the rest
        of its hits are counted."""
        assert self._agent.cache is not None
        for model, version in touched.entries:
            self._agent.cache.touch(model, version)
        self._metrics.cache_hits.add(max(0, touched.hits - len(touched.entries)))

    def _latest(self, model: str, state: ModelState) -> None:
        """Each publication of a model's value: tell the processes if "latest" now means another version."""
        version = resolve(latest_candidates(state), state.loading, self._agent.registry.loaded(model))
        self._processes.set_latest(model, version)

    def _process_counts(self) -> list[tuple[int, bool, int]]:
        return [
            (view.number, view.state == "serving", sum(1 for _, error in view.loaded.values() if error is None))
            for view in self._processes.views()
        ]
