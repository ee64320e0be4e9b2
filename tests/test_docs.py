"""The docs stay true to the code: CLI reference, public API, README contract."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tunegate

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_public_api_all_is_sorted_and_complete() -> None:
    exported = tunegate.__all__
    assert exported == sorted(exported, key=str.lower) or exported == sorted(exported)
    for name in exported:
        assert hasattr(tunegate, name), name
    public = {n for n in dir(tunegate) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(exported), sorted(public - set(exported))


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert commands == ["bash scripts/setup.sh && tunegate demo", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_doc_references_in_code_and_docs_resolve() -> None:
    """Every ``docs/<page>.md`` (and ``#anchor``) named in the package, the docs or the README
    exists: the starter config once linked sections that did not."""
    pattern = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
    sources = [
        *(ROOT / "src" / "tunegate").rglob("*.py"),
        *(ROOT / "src" / "tunegate").rglob("*.yaml"),
    ]
    sources += [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    broken = []
    for source in sources:
        for match in pattern.finditer(source.read_text(encoding="utf-8")):
            page = ROOT / "docs" / match.group(1)
            if not page.exists():
                broken.append(f"{source.name}: {match.group(0)} (no such page)")
                continue
            anchor = match.group(2)
            if anchor:
                headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{source.name}: {match.group(0)} (no such section)")
    assert not broken, broken
