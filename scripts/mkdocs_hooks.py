"""mkdocs hooks (mkdocs.yml `hooks:`): the pages' links to repository files outside docs/.

The pages link to the repository's own files with relative links (`../experiments/RESULTS.md`,
`../experiments/figures/countdown/curves.png`), which read right on the forge. The site holds docs/ only, so
mkdocs --strict would reject them: here an image is copied into the site (under `_repo/`), any other file is
shown as its repository path in code, and a link to a file that does not exist fails the build.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
COPIED = "_repo"


def _roots(config) -> tuple[Path, Path]:
    return Path(config.config_file_path).resolve().parent, Path(config.docs_dir).resolve()


def _outside(target: str, page_src: Path, docs: Path) -> Path | None:
    """The file a relative link points at when it lies outside docs/, else None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
        return None
    path = target.split("#", 1)[0]
    if not path:
        return None
    full = Path(os.path.normpath(page_src.parent / path))
    return None if full.is_relative_to(docs) else full


def _links(markdown: str):
    """(match, is_image, text, target) for every link outside fenced code."""
    spans = [m.span() for m in FENCE.finditer(markdown)]
    for m in LINK.finditer(markdown):
        if not any(a <= m.start() < b for a, b in spans):
            yield m, m.group(1) == "!", m.group(2), m.group(3)


def on_files(files, config):
    root, docs = _roots(config)
    seen = set()
    for f in list(files.documentation_pages()):
        src = Path(f.abs_src_path)
        for _, image, _, target in _links(src.read_text(encoding="utf-8")):
            full = _outside(target, src, docs)
            if image and full is not None and full.is_file() and full not in seen:
                seen.add(full)
                files.append(File.generated(config, f"{COPIED}/{full.relative_to(root).as_posix()}",
                                            abs_src_path=str(full)))
    return files


def on_page_markdown(markdown, page, config, files):
    root, docs = _roots(config)
    src = Path(page.file.abs_src_path)
    out, last = [], 0
    for m, image, text, target in _links(markdown):
        full = _outside(target, src, docs)
        if full is None:
            continue
        if not full.exists():
            raise PluginError(f"{page.file.src_uri} links to {target}, which does not exist")
        rel = full.relative_to(root).as_posix()
        if image:
            new = f"![{text}]({os.path.relpath(docs / COPIED / rel, src.parent)})"
        elif config.repo_url:
            new = f"[{text}]({config.repo_url.rstrip('/')}/blob/HEAD/{rel})"
        else:
            new = f"`{rel}`" if text.strip("`") == rel else f"{text} (`{rel}`)"
        out += [markdown[last:m.start()], new]
        last = m.end()
    return "".join(out) + markdown[last:]
