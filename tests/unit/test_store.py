"""The store's TF Serving mode: folders record what they hold, are reused, and go only once not in use."""

from __future__ import annotations

from pathlib import Path

from agent.boundaries.store import InternalVersions, ModelStore, StoredVersion


def fill(content: str):
    def write(folder: Path) -> None:
        (folder / "saved_model.pb").write_text(content)

    return write


def test_folders_record_their_content_and_a_new_store_reuses_them(tmp_path):
    # GIVEN version 1 of a installed by one run (whose clock was where the next run's is)
    first = ModelStore(tmp_path, InternalVersions(clock=lambda: 1.0).folder_name, record=True)
    folder = first.install("a", 1, "fp1", fill("one"))
    # WHEN a later run reads the store THEN it finds the version and fingerprint, and reuses the folder for them
    later = ModelStore(tmp_path, InternalVersions(clock=lambda: 1.0).folder_name, record=True)
    assert later.recorded() == [StoredVersion("a", 1, "fp1", folder)]
    assert later.install("a", 1, "fp1", fill("never called")) == folder
    assert (folder / "saved_model.pb").read_text() == "one"
    # AND other content of that version gets a folder of its own, never one a previous run used
    other = later.install("a", 1, "fp2", fill("two"))
    assert other != folder and (other / "saved_model.pb").read_text() == "two"


def test_a_folder_in_use_is_removed_only_once_it_is_no_longer(tmp_path):
    # GIVEN a folder the loader still needs (TF Serving has not reported its version unloaded)
    busy: set[Path] = set()
    store = ModelStore(tmp_path, InternalVersions().folder_name, record=True, in_use=lambda path: path in busy)
    folder = store.install("a", 1, "fp1", fill("one"))
    busy.add(folder)
    # WHEN it is removed THEN it stays, until a sweep after it is no longer in use
    store.remove(folder)
    assert folder.is_dir()
    store.sweep()
    assert folder.is_dir()
    busy.clear()
    store.sweep()
    assert not folder.exists()


def test_a_download_superseded_by_new_content_goes_once_not_in_use(tmp_path):
    # GIVEN version 1 downloaded (its load failed for now, so the folder was kept for the retry)
    store = ModelStore(tmp_path, InternalVersions().folder_name, record=True)
    kept = store.install("a", 1, "fp1", fill("one"))
    # WHEN S3 changes the version before the retry, and the new content is installed
    new = store.install("a", 1, "fp2", fill("two"))
    # THEN the old download is gone, the new one is there
    assert not kept.exists() and new.is_dir()


def test_without_records_the_python_handler_layout_is_unchanged(tmp_path):
    store = ModelStore(tmp_path)
    folder = store.install("a", 1, "0123456789abcdef", fill("one"))
    assert folder == tmp_path / "a" / "1-0123456789ab"
    assert [path.name for path in folder.iterdir()] == ["saved_model.pb"]
    other = store.install("a", 1, "fedcba9876543210", fill("two"))
    assert folder.is_dir() and other.is_dir()  # the serving folder goes by retire, not by install
