"""The generated reference pages, and which of them differ from what the code generates now."""

from __future__ import annotations

from collections.abc import Callable

from rlreason.reference import config_page, metrics_page
from rlreason.reference.keys import ROOT

PAGES: dict[str, Callable[[], str]] = {config_page.PATH: config_page.render, metrics_page.PATH: metrics_page.render}


def stale() -> list[str]:
    """Pages (paths from the repository root) whose committed text is not what their generator writes."""
    out = []
    for path, render in PAGES.items():
        target = ROOT / path
        if not target.exists() or target.read_text(encoding="utf-8") != render():
            out.append(path)
    return out
