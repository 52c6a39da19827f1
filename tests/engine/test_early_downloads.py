"""Files fetched before their version's marker (agent.engine.early_downloads), on a real store and a fake S3."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from s3transfer.exceptions import RetriesExceededError

from agent.boundaries.store import ModelStore
from agent.domain.locations import Location, S3Location
from agent.domain.versions import ObjectInfo
from agent.engine.early_downloads import KEEP_SECONDS, EarlyDownloads
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics
from tests.fakes import ManualClock, SerialExecutor
from tests.support import wait_until

MODEL = S3Location("b", "models/iris")
VERSION = MODEL.child("2")


class RecordingS3:
    """Writes each object's ETag as its content, and records every (key, ETag) fetched. A key in `gates`
    waits for its event before it is fetched; one in `failing` raises (an error S3 does not translate)."""

    def __init__(self) -> None:
        self.fetched: list[tuple[str, str]] = []
        self.gates: dict[str, threading.Event] = {}
        self.failing: set[str] = set()

    def download(self, location: Location, objects: Sequence[ObjectInfo], destination: Path) -> None:
        assert isinstance(location, S3Location)
        for obj in objects:
            key = location.key_prefix + obj.key
            if key in self.gates:
                assert self.gates[key].wait(10), f"{key} never released"
            if key in self.failing:
                self.failing.discard(key)
                raise RetriesExceededError(Exception("the stream broke"))
            self.fetched.append((key, obj.etag))
            target = destination / obj.key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(obj.etag)


def make(tmp_path: Path, pool: Executor | None = None):
    clock = ManualClock()
    scheduler = Scheduler(clock, SerialExecutor())
    s3, metrics = RecordingS3(), Metrics()
    early = EarlyDownloads(s3.download, ModelStore(tmp_path), scheduler, metrics, pool=pool or SerialExecutor())
    return early, s3, metrics, scheduler, clock


def outcomes(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.early_downloads.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_a_file_fetched_early_is_moved_into_the_version_and_not_fetched_again(tmp_path):
    # GIVEN version 2's file fetched as its event arrived
    early, s3, metrics, _, _ = make(tmp_path)
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
    assert s3.fetched == [("models/iris/2/model.pkl", "e1")]

    # WHEN the marker's listing has it with the same ETag, beside a file no event named
    into = tmp_path / "version"
    early.fill(VERSION, [ObjectInfo("model.pkl", 4, "e1"), ObjectInfo("extra.txt", 1, "e2")], into)

    # THEN only the other file is fetched, both are in place, and no scratch folder is left
    assert s3.fetched == [("models/iris/2/model.pkl", "e1"), ("models/iris/2/extra.txt", "e2")]
    assert (into / "model.pkl").read_text() == "e1" and (into / "extra.txt").read_text() == "e2"
    assert list((tmp_path / "iris").iterdir()) == []
    assert outcomes(metrics) == {"downloaded": 1.0, "used": 1.0}


def test_the_listing_decides_a_file_whose_etag_changed_is_fetched_as_listed(tmp_path):
    # GIVEN a file fetched early with ETag e1, and a duplicate event that fetches nothing more
    early, s3, _, _, _ = make(tmp_path)
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
    assert len(s3.fetched) == 1

    # WHEN the marker's listing says e9 (written again, its event not seen yet)
    into = tmp_path / "version"
    early.fill(VERSION, [ObjectInfo("model.pkl", 4, "e9")], into)

    # THEN the listed content is what lands
    assert (into / "model.pkl").read_text() == "e9"


def test_a_file_written_again_replaces_its_early_download(tmp_path):
    early, _, metrics, _, _ = make(tmp_path)
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e2")])
    into = tmp_path / "version"
    early.fill(VERSION, [ObjectInfo("model.pkl", 4, "e2")], into)
    assert (into / "model.pkl").read_text() == "e2"
    assert outcomes(metrics) == {"downloaded": 2.0, "unused": 1.0, "used": 1.0}
    assert list((tmp_path / "iris").iterdir()) == []


def test_what_no_load_takes_is_deleted_after_the_keep_time(tmp_path):
    # GIVEN a file fetched early for a version whose marker never comes
    early, _, metrics, scheduler, clock = make(tmp_path)
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
    assert len(list((tmp_path / "iris").iterdir())) == 1
    scheduler.start()
    try:
        # WHEN the keep time passes THEN its scratch folder goes
        clock.advance(KEEP_SECONDS + 1)
        wait_until(lambda: not list((tmp_path / "iris").iterdir()), what="the scratch folder removed")
    finally:
        scheduler.stop()
    assert outcomes(metrics) == {"downloaded": 1.0, "unused": 1.0}


def test_a_load_waits_for_the_early_download_on_its_way_instead_of_fetching_again(tmp_path):
    # GIVEN an early download in flight (its GET held back)
    with ThreadPoolExecutor(1) as pool:
        early, s3, _, _, _ = make(tmp_path, pool)
        s3.gates["models/iris/2/model.pkl"] = threading.Event()
        early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])
        wait_until(lambda: list((tmp_path / "iris").iterdir()), what="the early download started")

        # WHEN the version's load asks for it THEN it waits, and gets that download once it ends
        into = tmp_path / "version"
        loading = threading.Thread(target=early.fill, args=(VERSION, [ObjectInfo("model.pkl", 4, "e1")], into))
        loading.start()
        loading.join(0.2)
        assert loading.is_alive(), "the load should wait for the download on its way"
        s3.gates["models/iris/2/model.pkl"].set()
        loading.join(10)
    assert (into / "model.pkl").read_text() == "e1"
    assert s3.fetched == [("models/iris/2/model.pkl", "e1")]


def test_a_load_does_not_wait_behind_early_downloads_of_another_model(tmp_path):
    # GIVEN one early-download thread, busy with another model's large file, and ours queued behind it
    with ThreadPoolExecutor(1) as pool:
        early, s3, _, _, _ = make(tmp_path, pool)
        s3.gates["models/big/2/weights.bin"] = threading.Event()
        early.start("big", S3Location("b", "models/big"), [ObjectInfo("2/weights.bin", 10**9, "eb")])
        early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])

        # WHEN our version loads THEN its file is fetched by the load itself, at once
        into = tmp_path / "version"
        early.fill(VERSION, [ObjectInfo("model.pkl", 4, "e1")], into)
        assert (into / "model.pkl").read_text() == "e1"
        s3.gates["models/big/2/weights.bin"].set()


def test_a_failed_early_download_is_fetched_by_the_load_and_leaves_nothing(tmp_path):
    # GIVEN an early download that failed with an error the S3 boundary does not translate
    early, s3, metrics, _, _ = make(tmp_path)
    s3.failing.add("models/iris/2/model.pkl")
    early.start("iris", MODEL, [ObjectInfo("2/model.pkl", 4, "e1")])

    # WHEN the version loads THEN the load fetches the file itself, and no scratch folder is left
    into = tmp_path / "version"
    early.fill(VERSION, [ObjectInfo("model.pkl", 4, "e1")], into)
    assert (into / "model.pkl").read_text() == "e1"
    assert list((tmp_path / "iris").iterdir()) == []
    assert outcomes(metrics) == {"failed": 1.0}


def test_stop_cancels_what_has_not_started_and_deletes_what_no_load_took(tmp_path):
    # GIVEN one early download in flight and one queued behind it
    pool = ThreadPoolExecutor(1)
    early, s3, _, _, _ = make(tmp_path, pool)
    s3.gates["models/iris/2/a.bin"] = threading.Event()
    early.start("iris", MODEL, [ObjectInfo("2/a.bin", 4, "ea"), ObjectInfo("2/b.bin", 4, "eb")])
    wait_until(lambda: list((tmp_path / "iris").iterdir()), what="the first download started")

    # WHEN the agent stops THEN it does not wait for the one in flight, the queued one never runs,
    # and once the one in flight ends its folder goes too
    early.stop()
    s3.gates["models/iris/2/a.bin"].set()
    pool.shutdown(wait=True)
    assert s3.fetched == [("models/iris/2/a.bin", "ea")]
    wait_until(lambda: not list((tmp_path / "iris").iterdir()), what="every scratch folder removed")
