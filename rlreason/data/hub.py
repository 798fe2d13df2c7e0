"""Rows of a Hugging Face Hub dataset, through `datasets`, failing with one clear DataError when the Hub
cannot be reached.

Unreachable, `datasets` would retry each request for ~25 s (huggingface_hub's backoff) and then raise a
bare ConnectionError. So before the first request the Hub's endpoint is probed once, through
huggingface_hub's own HTTP session (its proxies and certificates), and an unreachable Hub is reported
at once, with the two ways out: local files, or a cache prepared on a machine with network and read in
offline mode. In offline mode (HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1) nothing is probed: `datasets`
reads its cache, and says at once when the dataset is not in it.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rlreason.data.record import DataError

Row = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Why:
    """Why a split is read from the Hub, for the messages: `key` is the split's config name (train |
    test); `forced`: data.source=hub (else its data.{key}_path is unset)."""

    key: str = "train"
    forced: bool = False

    def __str__(self) -> str:
        return f"data.source=hub, so the {self.key} split" if self.forced else \
            f"data.{self.key}_path is unset, so the {self.key} split"

    @property
    def local(self) -> str:
        return f"{'data.source=local ' if self.forced else ''}data.train_path=FILE data.test_path=FILE"


def hub_rows(hub_id: str, config: str | None, split: str, why: Why = Why()) -> Iterator[tuple[str, Row]]:
    """Rows of a hub dataset. No config on a dataset that has several (hendrycks_math has one per
    subject, and no default) means all of them, in the hub's order."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    check_reachable(hub_id, config, split, why)
    network = network_errors()
    try:
        configs: list[str | None] = [config]
        if config is None:
            names = datasets.get_dataset_config_names(hub_id)
            if len(names) > 1 and "default" not in names:
                configs = list(names)
        loaded = [(c, datasets.load_dataset(hub_id, c, split=split)) for c in configs]
    except (ConnectionError, *network) as e:  # datasets' "Couldn't reach ..." (OfflineModeIsEnabled is one)
        raise DataError(unreachable(hub_id, config, split, why, f"{type(e).__name__}: {e}")) from None
    except DatasetNotFoundError as e:
        raise DataError(f"{why} comes from the Hugging Face Hub, but {e} (check data.hub_id"
                        f"{'' if why.key == 'train' else ' / data.hub_test_id'}; a gated dataset needs `hf auth login` or "
                        f"HF_TOKEN; or give local files: {why.local})") from None
    for c, ds in loaded:
        name = f"{hub_id}{'/' + c if c else ''} [{split}]"
        for n, row in enumerate(ds, 1):
            yield f"{name} row {n}", row


def offline() -> bool:
    """The Hub's offline mode, as `datasets` reads it (HF_DATASETS_OFFLINE, else HF_HUB_OFFLINE)."""
    import datasets

    return bool(datasets.config.HF_HUB_OFFLINE)


def network_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub's HTTP session raises when it cannot connect, whichever client its version
    uses: httpx2's or httpx's transport errors (huggingface_hub >= 1.0), requests' (0.x)."""
    import importlib

    found: list[type[Exception]] = []
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            found += [getattr(importlib.import_module(module), n) for n in names]
        except ImportError:
            continue
    return tuple(found)


def check_reachable(hub_id: str, config: str | None, split: str, why: Why) -> None:
    """Probe the Hub's endpoint once (one request, no retries, HF_HUB_ETAG_TIMEOUT seconds at most)
    unless in offline mode. Unreachable: a DataError, unless `datasets` has a cached copy of `hub_id`,
    which it falls back on by itself after its retries (a warning says how to skip them)."""
    if offline():
        return
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except network_errors() as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if cached(hub_id):
            log.warning("the Hugging Face Hub (%s) cannot be reached (%s): datasets reads %s from its cache after "
                        "its retries (~25 s a request); HF_HUB_OFFLINE=1 reads the cache at once", constants.ENDPOINT,
                        error, hub_id)
            return
        raise DataError(unreachable(hub_id, config, split, why, f"{constants.ENDPOINT}: {error}")) from None


def cached(hub_id: str) -> bool:
    """Whether `datasets`' cache holds some version of `hub_id` (where its offline fallback looks)."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    *owner, name = hub_id.split("/")
    root = os.path.join(os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE)),
                        "___".join([*owner, camelcase_to_snakecase(name)]))
    return any(os.path.isdir(p) for p in glob.glob(os.path.join(root, "*", "*", "*")))


def unreachable(hub_id: str, config: str | None, split: str, why: Why, error: str) -> str:
    """The one message for a hub split that cannot be read from here: the dataset, why, the two ways out."""
    import datasets

    cache = os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE))
    if config is None:
        download = (f"datasets.load_dataset({hub_id!r}, name, split={split!r}) for each name in "
                    f"datasets.get_dataset_config_names({hub_id!r})")
    else:
        download = f"datasets.load_dataset({hub_id!r}, {config!r}, split={split!r})"
    if offline():
        state = (f"offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the datasets cache ({cache}) "
                 f"holds no copy of it ({error})")
        cache_way = f"fill the cache: run {download} on a machine with network and copy its cache ({cache}) here"
    else:
        state = f"the Hub cannot be reached from here ({error})"
        cache_way = (f"run {download} on a machine with network, copy its cache ({cache}) here and run with "
                     "HF_HUB_OFFLINE=1 (or HF_DATASETS_OFFLINE=1)")
    return (f"{why} comes from the Hugging Face Hub dataset {hub_id}, but {state}. Either give local files, JSONL "
            f"or parquet with the dataset's fields: {why.local}; or {cache_way}")
