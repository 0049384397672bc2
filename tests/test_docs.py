"""The generated CLI reference must match the typer app."""

from __future__ import annotations

import difflib
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _generator():
    spec = importlib.util.spec_from_file_location("generate_cli_reference", os.path.join(DOCS, "generate_cli_reference.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _generator().render()
    path = os.path.join(DOCS, "cli.md")
    with open(path, encoding="utf-8") as f:
        actual = f.read()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile="docs/cli.md (committed)",
                tofile="docs/cli.md (generated)",
                n=1,
            )
        )
        raise AssertionError(
            "docs/cli.md is out of date with datactl/cli/app.py.\n"
            "Run `python docs/generate_cli_reference.py` and commit the result.\n\n" + diff[:4000]
        )


def test_cli_reference_is_deterministic(monkeypatch) -> None:
    gen = _generator()
    first = gen.render()
    monkeypatch.setenv("COLUMNS", "37")
    monkeypatch.setenv("TERM", "dumb")
    assert gen.render() == first, "the generator must not depend on the terminal"


def test_cli_reference_lists_every_command() -> None:
    import typer.main

    from datactl.cli.app import app

    text = _generator().render()
    for name in typer.main.get_command(app).commands:
        assert f"\n## datactl {name}\n" in text, f"docs/cli.md has no section for `datactl {name}`"


def _anchors(text: str) -> set[str]:
    """GitHub-style heading anchors: lower case, punctuation dropped, spaces to '-'."""
    import re

    out = set()
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_docs_links_resolve() -> None:
    """Relative links in the README and the docs pages point at files and headings that exist."""
    import glob
    import re

    pages = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(DOCS, "*.md")))]
    texts = {os.path.normpath(p): open(p, encoding="utf-8").read() for p in pages}
    for page, text in texts.items():
        for target, anchor in re.findall(r"\]\(([^)#:\s]*\.md)?(?:#([^)\s]+))?\)", text):
            if not target and not anchor:
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(page), target)) if target else page
            assert os.path.exists(path), f"{page} links to {target}, which does not exist"
            if anchor:
                body = texts.get(path) or open(path, encoding="utf-8").read()
                assert anchor in _anchors(body), f"{page} links to {target}#{anchor}, which has no such heading"
