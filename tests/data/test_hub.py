"""A hub split that cannot be read: one DataError naming the dataset and the ways out, at once (no ~25 s
of retries); unrelated errors are not swallowed. The Hub is made unreachable explicitly (its endpoint at a
closed local port, an empty cache), so these behave the same on a machine with network."""

from __future__ import annotations

import socket
import time

import datasets
import huggingface_hub
import pytest
from datasets.exceptions import DatasetNotFoundError

from rlreason.data import DataError, load_questions
from rlreason.data.hub import Why, hub_rows
from tests.data.test_loaders import data_cfg


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """The Hub's endpoint at a port nothing listens on, offline mode off, an empty datasets cache."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    return endpoint


def test_unreachable_fails_at_once(no_hub, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("datasets was asked although the Hub cannot be reached")

    monkeypatch.setattr(datasets, "load_dataset", never)
    monkeypatch.setattr(datasets, "get_dataset_config_names", never)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_questions(data_cfg("math"))
    elapsed = time.perf_counter() - start
    msg = str(info.value)
    assert elapsed < 10, elapsed  # huggingface_hub's retries alone take 23 s
    assert msg.startswith("data.train_path is unset, so the train split comes from the Hugging Face Hub dataset "
                          "EleutherAI/hendrycks_math, but the Hub cannot be reached from here"), msg
    assert f"({no_hub}: ConnectError: " in msg and "Connection refused" in msg
    assert "data.train_path=FILE data.test_path=FILE" in msg and "HF_HUB_OFFLINE=1" in msg
    # every subject config, since hendrycks_math has no default
    assert "for each name in datasets.get_dataset_config_names('EleutherAI/hendrycks_math')" in msg

    with pytest.raises(DataError, match=r"^data.source=hub, so the train split comes from .* openai/gsm8k.*"
                                        r"data.source=local data.train_path=FILE"):
        load_questions(data_cfg("gsm8k", source="hub"))


def test_cached_copy_is_left_to_datasets(no_hub, monkeypatch, tmp_path, caplog):
    """Unreachable but cached: `datasets` falls back on its cache by itself; a warning says how to skip
    its retries."""
    (tmp_path / "datasets" / "openai___gsm8k" / "main" / "0.0.0" / "abc123").mkdir(parents=True)
    rows = [{"question": "1+1?", "answer": "#### 2"}]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    train, _ = load_questions(data_cfg("gsm8k", source="hub"))
    assert [q.answer for q in train] == ["2"]
    assert "HF_HUB_OFFLINE=1 reads the cache at once" in caplog.text


@pytest.mark.parametrize(("offline", "expected"), [
    (True, "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the datasets cache"),
    (False, "the Hub cannot be reached from here (ConnectionError: Couldn't reach"),
])
def test_datasets_connection_error(monkeypatch, tmp_path, offline, expected):
    """What `datasets` raises itself (offline mode without a cache, or a connection lost after the probe)."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr("rlreason.data.hub.check_reachable", lambda *args: None)

    def unreachable(hub_id, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{hub_id}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError) as info:
        list(hub_rows("openai/gsm8k", "main", "test", Why("test")))
    msg = str(info.value)
    assert msg.startswith("data.test_path is unset, so the test split comes from the Hugging Face Hub dataset "
                          "openai/gsm8k") and expected in msg, msg
    assert "datasets.load_dataset('openai/gsm8k', 'main', split='test')" in msg


def test_missing_dataset_and_other_errors(monkeypatch):
    monkeypatch.setattr("rlreason.data.hub.check_reachable", lambda *args: None)

    def missing(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'openai/gsm9k' doesn't exist on the Hub or cannot be accessed.")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(DataError, match=r"Dataset 'openai/gsm9k' doesn't exist .* \(check data.hub_id; .*HF_TOKEN"):
        list(hub_rows("openai/gsm9k", "main", "train"))

    def bug(*args, **kwargs):
        raise KeyError("features")  # not an input problem: it must surface as itself

    monkeypatch.setattr(datasets, "load_dataset", bug)
    with pytest.raises(KeyError):
        list(hub_rows("openai/gsm8k", "main", "train"))
