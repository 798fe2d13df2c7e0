"""docs/reference/config.md and metrics.md are what the code generates now (rlreason/reference/pages.py)."""

from __future__ import annotations

from rlreason.config import EvalConfig
from rlreason.metrics import METRICS
from rlreason.reference import config_page, markdown, metrics_page, pages
from rlreason.reference.__main__ import main
from rlreason.reference.keys import schema_keys
from rlreason.reference.presets import groups


def test_the_committed_pages_are_current():
    stale = pages.stale()
    assert not stale, (f"{', '.join(stale)} differ from what the code generates: run `python -m rlreason.reference` "
                       "and commit the result (a new config key needs its comment in rlreason/config/, a new "
                       "metric its entry in rlreason/metrics.py)")


def test_the_config_page_has_every_key_and_option():
    page = config_page.render()
    for k in schema_keys():
        assert (f"\n## {k.name}\n" if k.group and "." not in k.name else f"| `{k.name}` |") in page, k.name
    for k in schema_keys(EvalConfig):
        assert f"| `{k.name}` |" in page or f"\n## {k.name}\n" in page, k.name
    assert "| `grpo` | GRPO: group-normalised" in page and "## experiment" in page
    for group in groups():  # every group of conf/, whether or not the schema has a node of its name
        assert f"\n## {group}\n" in page, group
    assert "`algo.kl_reduction=\"sequence_sum\"`" in page


def test_the_metrics_page_has_every_metric():
    page = metrics_page.render()
    for m in METRICS:
        assert f"| `{m.name}` |" in page, m.name


def test_a_stale_page_is_reported_by_check(monkeypatch, capsys):
    assert main(["--check"]) == 0
    monkeypatch.setitem(pages.PAGES, metrics_page.PATH, lambda: "changed\n")
    assert pages.stale() == [metrics_page.PATH]
    assert main(["--check"]) == 1
    assert "docs/reference/metrics.md is stale: run `python -m rlreason.reference`" in capsys.readouterr().err


def test_table_text_escapes_pipes_outside_code():
    assert markdown.text("a | b `c|d` <e> *f") == r"a \| b `c|d` &lt;e> \*f"
