"""Token use-cases shared by ``tunegate token`` and the admin API: each change is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from tunegate.errors import NotFoundError
from tunegate.server import issue_token, list_tokens, verify_token, withdraw_token
from tunegate.store import Store


def test_issue_and_withdraw_tokens_are_audited(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 't.db'}") as store:
        token, info = issue_token(store, role="analyst", name="carol", actor="root")
        assert verify_token(store, token) is not None and info.to_dict()["role"] == "analyst"
        [created] = store.audit_log("token_create")
        assert created["actor"] == "root"
        assert created["details"] == {"token_id": info.id, "name": "carol", "role": "analyst"}
        with pytest.raises(NotFoundError):
            withdraw_token(store, "nobody", actor="root")
        assert store.audit_log("token_revoke") == []
        [revoked] = withdraw_token(store, "carol", actor="cli")
        assert revoked.id == info.id and revoked.revoked
        [row] = store.audit_log("token_revoke")
        assert row["actor"] == "cli" and row["details"] == {"token_ids": [info.id]}
        assert verify_token(store, token) is None
        assert [t.revoked for t in list_tokens(store)] == [True]
