"""MkDocs hook: a page's relative link to a file of the repository outside docs/ (such as
``../examples/own-code/train.py``) works on GitHub as written; in the site it points at a
copy of that file under ``repository/``, which the build adds. A link to a file that does
not exist is left alone, so MkDocs reports it (and ``--strict`` fails).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
COPIES = "repository"
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def _repo_path(page_uri: str, target: str) -> str | None:
    """The repository path (from its root) of a link that leaves docs/ to a plain file
    that exists and is not a Markdown page; else None."""
    if "://" in target or target.startswith(("/", "mailto:")):
        return None
    in_docs = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), target))
    if not in_docs.startswith("../"):
        return None
    path = posixpath.normpath(posixpath.join("docs", in_docs))
    if path.startswith("../") or path.endswith(".md") or not (ROOT / path).is_file():
        return None
    return path


def _links(page_uri: str, markdown: str) -> list[tuple[str, str]]:
    found = []
    for match in _LINK.finditer(markdown):
        path = _repo_path(page_uri, match["target"])
        if path is not None:
            found.append((match["target"], path))
    return found


def on_files(files: Files, *, config: Any) -> Files:
    """MkDocs event: add a copy of every repository file a page links to."""
    wanted: set[str] = set()
    for file in files.documentation_pages():
        wanted |= {path for _, path in _links(file.src_uri, file.content_string)}
    for path in sorted(wanted):
        files.append(File.generated(config, f"{COPIES}/{path}", abs_src_path=str(ROOT / path)))
    return files


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: point the page's links to repository files at their copies."""
    page_dir = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        path = _repo_path(page.file.src_uri, match["target"])
        if path is None:
            return match[0]
        copy = posixpath.relpath(f"{COPIES}/{path}", page_dir or ".")
        return f"]({copy}{match['anchor'] or ''})"

    return _LINK.sub(relink, markdown)
