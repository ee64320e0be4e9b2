"""``tunegate kb ingest / search / versions`` on a tiny encoder, and the slow test on MiniLM."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from tests._tiny_models import make_tiny_encoder

from tunegate.cli import main
from tunegate.config import ModelSettings, RetrievalSettings
from tunegate.kb import KnowledgeBase, load_markdown_folder
from tunegate.store import Store

IT_POLICY = {
    "vpn.v1.md": (
        "vpn",
        "1",
        "2024-01-01",
        "# VPN access\n\n## Connecting\nConnect to the "
        "corporate VPN with the Cisco client and your password.\n",
    ),
    "vpn.v2.md": (
        "vpn",
        "2",
        "2024-06-01",
        "# VPN access\n\n## Connecting\nConnect to the "
        "corporate VPN with the GlobalProtect app; a security key is required.\n",
    ),
    "passwords.md": (
        "passwords",
        "1",
        "2024-01-01",
        "# Passwords\n\n## Rotation\nPasswords "
        "expire every 90 days. Reset a forgotten password at the self-service "
        "portal.\n",
    ),
    "laptops.md": (
        "laptops",
        "1",
        "2024-01-01",
        "# Laptops\n\n## Replacement\nLaptops are "
        "replaced every four years; a broken screen is repaired by the service "
        "desk.\n",
    ),
    "phishing.md": (
        "phishing",
        "1",
        "2024-02-01",
        "# Phishing\n\n## Reporting\nForward a "
        "suspicious email to the security team and do not click its links.\n",
    ),
    "printers.md": (
        "printers",
        "1",
        "2024-01-01",
        "# Printing\n\n## Queues\nAdd a printer "
        "from the print queue list; toner is ordered by facilities.\n",
    ),
}


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (doc_id, version, start, body) in IT_POLICY.items():
        (folder / name).write_text(
            f"---\nid: {doc_id}\nversion: '{version}'\neffective_from: {start}\n"
            f"metadata:\n  audience: staff\n---\n{body}"
        )
    return folder


def test_kb_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    encoder = make_tiny_encoder(tmp_path / "enc", dropout=0.0)
    config = tmp_path / "tunegate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "kb",
                "labels": {"a": {"description": "a"}, "b": {"description": "b"}},
                "store": {"url": "sqlite:///kb.db"},
                "model": {"encoder": encoder, "backend": "torch"},
                "retrieval": {"top_k": 2, "chunk_size": 30, "chunk_overlap": 5},
            }
        )
    )
    corpus = write_corpus(tmp_path / "docs")
    assert main(["kb", "ingest", str(corpus), "-c", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["versions_added"], report["documents"]) == (6, 5)
    assert (
        main(
            [
                "kb",
                "search",
                "vpn cisco client",
                "-c",
                str(config),
                "--as-of",
                "2024-03-01",
                "--json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    top = found["hits"][0]
    assert (top["doc_id"], top["version"], top["stale"], top["current_version"]) == (
        "vpn",
        "1",
        True,
        "2",
    )
    assert len(found["hits"]) == 2
    assert main(["kb", "search", "vpn", "-c", str(config), "--top-k", "1"]) == 0
    assert "vpn 2 #0" in capsys.readouterr().out
    assert main(["kb", "versions", "vpn", "-c", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["current"]) for r in rows] == [("1", False), ("2", True)]
    assert rows[0]["effective_until"].startswith("2024-06-01")
    assert main(["kb", "versions", "nope", "-c", str(config)]) != 0
    assert "no knowledge-base document 'nope'" in capsys.readouterr().err
    assert main(["kb", "search", "x", "-c", str(config), "--as-of", "soon"]) != 0
    assert "--as-of 'soon' is not a date" in capsys.readouterr().err


@pytest.mark.slow
def test_minilm_finds_the_policy_in_force(tmp_path: Path, encoder_path: str) -> None:
    from tunegate.models import get_encoder

    encoder = get_encoder(ModelSettings(encoder=encoder_path))
    docs = load_markdown_folder(write_corpus(tmp_path / "docs"))
    with Store(f"sqlite:///{tmp_path / 'kb.db'}") as store:
        kb = KnowledgeBase(store, RetrievalSettings(top_k=3), encoder=encoder)
        kb.ingest(docs)
        now = datetime(2025, 1, 1, tzinfo=UTC)
        cases = {
            "how do I get on the corporate network from home": "vpn",
            "I forgot my login secret": "passwords",
            "my notebook display cracked": "laptops",
            "I got a weird mail asking me to click": "phishing",
            "where do I order toner": "printers",
        }
        for question, expected in cases.items():
            hits = kb.search(question, as_of=now, now=now).hits
            assert hits[0].doc_id == expected, (question, [h.doc_id for h in hits])
        early = kb.search(
            "which VPN client do I use", as_of=datetime(2024, 3, 1, tzinfo=UTC), now=now
        ).hits[0]
        assert (early.doc_id, early.version, early.stale) == ("vpn", "1", True)
        late = kb.search("which VPN client do I use", as_of=now, now=now).hits[0]
        assert (late.doc_id, late.version, late.stale) == ("vpn", "2", False)
