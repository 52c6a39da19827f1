"""The test doubles of the suite, each written once: recording fakes (they do the job in memory and keep
what they were asked, as s3transfer's RecordingSubscriber does), never mocks; explicit switches where a
test needs a failure; a manual clock and a serial executor, so time-based tests move time instead of
sleeping; agents built by the CLI's own runtime factory; and the traffic generator that hammers a server
while reloads happen."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx

from agent.boundaries.sources import ModelObjects
from agent.boundaries.sqs import Message
from agent.domain.routing import ModelSet
from agent.domain.settings import ReloadingSettings
from agent.domain.tfserving import ModelEntry, VersionState
from agent.engine.agent import Agent
from agent.engine.registry import Registry
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics
from agent.runtimes import Runtime, build_runtime
from tests.support import wait_until

T = TypeVar("T")
A = TypeVar("A")


# -- SQS -------------------------------------------------------------------------------------


class RecordingQueue:
    """A queue for QueueConsumer: serves the messages given to it once, then waits like an empty long poll;
    records receives, deletes and visibility changes."""

    def __init__(self, messages: list[Message], redrive_policy: bool = True) -> None:
        self.url = "https://sqs.test/queue"
        self._inbox = list(messages)
        self._redrive_policy = redrive_policy
        self.deleted: list[str] = []
        self.retried: list[tuple[str, int]] = []
        self.changed = threading.Event()
        self.receives: list[tuple[int, int | None]] = []

    def receive(self, wait_seconds: int = 20, visibility_timeout: int | None = None) -> list[Message]:
        self.receives.append((wait_seconds, visibility_timeout))
        if self._inbox:
            batch, self._inbox = self._inbox[:10], self._inbox[10:]
            return batch
        self.changed.wait(0.05)
        return []

    def delete(self, messages: list[Message]) -> list[str]:
        self.deleted += [m.id for m in messages]
        return []

    def retry_in(self, message: Message, seconds: int) -> None:
        self.retried.append((message.id, seconds))

    def attributes(self, *names: str) -> dict[str, str]:
        return {"RedrivePolicy": "{}"} if self._redrive_policy else {}


# -- TF Serving ------------------------------------------------------------------------------

SIGNATURES = {"serving_default": {"x": 1}, "__saved_model_init_op": {}}


class RecordingTFServing:
    """TF Serving for the loader, in memory: records every config call; a configured version becomes
    AVAILABLE at the next status read; a version the config drops becomes END.

    Switches a test sets to make it misbehave:
    - `broken`: versions that end with an error instead (END, "bad graph");
    - `stuck`: versions that stay LOADING;
    - `fail_next_reload(error, applied=...)`: the next config call raises `error`, having applied its
      config or not (a call that hit its deadline while TF Serving went on);
    - `fail_next_status(error)`: the next status read raises `error` (busy, or restarting);
    - `before_next_status(action)`: run `action` at the start of the next status read (another thread
      acting between a caller's snapshot and its read);
    - `ignores_configs`: configs are recorded but change no version state (slow to load or unload);
    - `restart()`: forget every version, as a restarted TF Serving does.
    """

    def __init__(self) -> None:
        self.configs: list[dict[str, tuple[int, ...]]] = []
        self.sent: list[tuple[ModelEntry, ...]] = []  # every config call's entries, as sent
        self.timeouts: list[float | None] = []
        self.states: dict[str, dict[int, VersionState]] = {}
        self.broken: set[int] = set()
        self.stuck: set[int] = set()
        self.ignores_configs = False
        self.overlapping_calls = 0
        self._reload_failure: tuple[Exception, bool] | None = None
        self._status_failures: list[Exception] = []
        self._before_status: list[Callable[[], None]] = []
        self._calls = 0
        self._guard = threading.Lock()

    def fail_next_reload(self, error: Exception, applied: bool = False) -> None:
        self._reload_failure = (error, applied)

    def fail_next_status(self, error: Exception) -> None:
        self._status_failures.append(error)

    def before_next_status(self, action: Callable[[], None]) -> None:
        self._before_status.append(action)

    @property
    def status_failures_left(self) -> int:
        return len(self._status_failures)

    def reload_config(self, entries: Sequence[ModelEntry], timeout: float | None = None) -> None:
        self.sent.append(tuple(entries))
        self.timeouts.append(timeout)
        with self._guard:
            self._calls += 1
            if self._calls > 1:
                self.overlapping_calls += 1
        try:
            failure, self._reload_failure = self._reload_failure, None
            if failure is None or failure[1]:
                self.apply(entries)
            if failure is not None:
                raise failure[0]
            threading.Event().wait(0.001)  # widen any overlap
        finally:
            with self._guard:
                self._calls -= 1

    def apply(self, entries: Sequence[ModelEntry]) -> None:
        """What a config call does inside TF Serving (a test may call it to play a late call)."""
        config = {entry.name: entry.versions for entry in entries}
        self.configs.append(config)
        if self.ignores_configs:
            return
        for model, states in self.states.items():
            for version, state in states.items():
                if version not in config.get(model, ()) and state.state != "END":
                    states[version] = VersionState("END")
        for model, versions in config.items():
            for version in versions:
                states = self.states.setdefault(model, {})
                if version not in states or (states[version].state == "END" and not states[version].error):
                    states[version] = VersionState("LOADING")

    def model_status(self, model: str) -> dict[int, VersionState]:
        if self._before_status:
            self._before_status.pop(0)()
        if self._status_failures:
            raise self._status_failures.pop(0)
        states = self.states.get(model, {})
        for version, state in states.items():
            if state.state == "LOADING" and version not in self.stuck:
                states[version] = (
                    VersionState("END", "bad graph") if version in self.broken else VersionState("AVAILABLE")
                )
        return dict(states)

    def signatures(self, model: str, version: int) -> dict[str, dict[str, int]]:
        return SIGNATURES

    def restart(self) -> None:
        self.states.clear()


# -- time ------------------------------------------------------------------------------------


class SteppingClock:
    """A clock (agent.engine.scheduler.Clock) moving `step` seconds at each read, so timeouts pass at once."""

    def __init__(self, step: float) -> None:
        self._now = 0.0
        self.step = step

    def now(self) -> float:
        self._now += self.step
        return self._now

    def wait(self, condition: threading.Condition, until: float | None) -> None:
        condition.wait(0.001)  # any later read is past `until`


class ManualClock:
    """A clock that moves only when told (`advance`), waking whoever waits on it: tests drive time."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._waiting: weakref.WeakSet[threading.Condition] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def wait(self, condition: threading.Condition, until: float | None) -> None:
        with self._lock:
            self._waiting.add(condition)
        condition.wait()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            waiting = list(self._waiting)
        for condition in waiting:
            with condition:
                condition.notify_all()


class SerialExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread (s3transfer's serial-executor switch)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


class RecordingHandler:
    """A Python handler whose `load_model` reads `model.txt` and records every path it loads."""

    def __init__(self, load: Callable[[str], Any] | None = None) -> None:
        self.paths: list[str] = []
        self._load = load

    def load_model(self, path: str) -> Any:
        self.paths.append(path)
        if self._load is not None:
            return self._load(path)
        return Path(path, "model.txt").read_text()


def build_agent(
    models: ModelSet,
    settings: ReloadingSettings,
    model_dir: Path,
    handler: Any = None,
    handler_type: str = "python",
    scheduler: Scheduler | None = None,
    registry: Registry | None = None,
    tfserving: Any = None,
) -> tuple[Agent, Runtime]:
    """An agent on local model folders, built by the same factory as `reloader serve` / `reloader agent`."""
    registry = registry or Registry(single_model=models.fixed[0].name if models.single else None)
    scheduler = scheduler or Scheduler()
    metrics = Metrics()
    runtime = build_runtime(
        handler_type, registry, settings, model_dir, scheduler, models, metrics, tfserving=tfserving
    )
    if handler is not None:
        runtime.attach(handler)
    agent = Agent(
        models,
        ModelObjects(None),
        runtime.store,
        runtime.loader,
        registry,
        settings,
        metrics,
        runtime.completeness,
        scheduler,
        runtime.lifecycle,
    )
    return agent, runtime


# -- traffic ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer(Generic[A, T]):
    """One call of a traffic thread: its wall-clock start and end, its argument, and what came back (or the error)."""

    start: float
    end: float
    argument: A
    value: T | None = None
    error: Exception | None = None


Session = Callable[[A], AbstractContextManager[Callable[[], T]]]


class Traffic(Generic[A, T]):
    """Client threads that call without pause (or every `pause` seconds) until the `with` block ends, and
    record every answer; the block starts once each thread has had one.

    One thread per argument; `session(argument)` opens that thread's call (an HTTP client of its own,
    say); `failed(answer)` says which answers that did not raise count as failures."""

    def __init__(
        self,
        session: Session[A, T],
        arguments: Sequence[A],
        pause: float = 0.0,
        failed: Callable[[Answer[A, T]], bool] = lambda answer: False,
    ) -> None:
        self._session = session
        self._pause = pause
        self._failed = failed
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._answers: list[Answer[A, T]] = []
        self._threads = [threading.Thread(target=self._run, args=(a,), daemon=True) for a in arguments]

    @classmethod
    def calling(cls, send: Callable[[A], T], arguments: Sequence[A], pause: float = 0.0) -> Traffic[A, T]:
        """Threads calling `send(argument)`; an answer fails when the call raises."""
        return cls(lambda argument: nullcontext(lambda: send(argument)), arguments, pause)

    @classmethod
    def http(
        cls,
        url: str,
        payload: Any = None,
        params: Sequence[dict[str, str]] = ({},),
        threads: int = 1,
        pause: float = 0.0,
        timeout: float = 30,
        failed: Callable[[Answer[dict[str, str], httpx.Response]], bool] | None = None,
    ) -> Traffic[dict[str, str], httpx.Response]:
        """`threads` clients POSTing `payload` to `url`/ with the `params` in turn, each over its own connection;
        an answer fails when it raises or is not a 200 (or when `failed` says so)."""

        @contextmanager
        def session(query: dict[str, str]) -> Any:
            with httpx.Client(base_url=url, timeout=timeout) as client:
                yield lambda: client.post("/", json=payload if payload is not None else {}, params=query)

        def not_ok(answer: Answer[dict[str, str], httpx.Response]) -> bool:
            assert answer.value is not None
            return answer.value.status_code != 200 or (failed is not None and failed(answer))

        return Traffic(session, [params[index % len(params)] for index in range(threads)], pause, not_ok)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        wait_until(lambda: len(self._answers) >= len(self._threads), what="traffic flowing")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def answers(self) -> list[Answer[A, T]]:
        with self._lock:
            return list(self._answers)

    def failures(self) -> list[Answer[A, T]]:
        return [answer for answer in self.answers if self._is_failure(answer)]

    def last(self, argument: A) -> Answer[A, T] | None:
        """The last answer that did not fail among the calls made with `argument`."""
        matching = [a for a in self.answers if a.argument == argument and not self._is_failure(a)]
        return matching[-1] if matching else None

    def _is_failure(self, answer: Answer[A, T]) -> bool:
        return answer.error is not None or self._failed(answer)

    def _run(self, argument: A) -> None:
        with self._session(argument) as send:
            while not self._stop.is_set():
                start = time.time()
                try:
                    value = send()
                    answer: Answer[A, T] = Answer(start, time.time(), argument, value=value)
                except Exception as error:  # any failure counts, and the traffic goes on
                    answer = Answer(start, time.time(), argument, error=error)
                with self._lock:
                    self._answers.append(answer)
                if self._pause:
                    self._stop.wait(self._pause)
