"""The dashboard follows the data: its window is the 12 weeks that end with the newest
decision or override (a store whose traffic was simulated in 2025 shows its weeks), or a
chosen ``?from=&to=`` range; and the champion card names the base model, never an absolute
site-packages path."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from _server_support import Service, login, service  # noqa: F401 (fixture)
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import Decision, ModelKind, ModelVersion, Override, ReasonCode, Route, Ticket
from tunegate.serving import ChampionSummary, service_figures

LAST = datetime(2025, 5, 21, 10, tzinfo=UTC)  # a Wednesday, long before any test run
SITE = "/usr/lib/python3.11/site-packages/tunegate/_assets/all-MiniLM-L6-v2"


def _fill(svc: Service, workflow: Workflow) -> None:
    """One decision a day for 20 weeks up to LAST, an override every 7th day."""
    label = workflow.label_names[0]
    tickets, decisions, overrides = [], [], []
    for i in range(140):
        when = LAST - timedelta(days=i)
        tid = f"t{i}"
        tickets.append(Ticket(id=tid, text=f"ticket {i}", created_at=when))
        decisions.append(
            Decision(
                ticket_id=tid,
                model_version="m",
                probabilities={label: 1.0},
                label=label,
                h_norm=0.1,
                route=Route.AUTO,
                latency_ms=1.0,
                created_at=when,
            )
        )
        if i % 7 == 0:
            overrides.append(
                Override(
                    ticket_id=tid,
                    model_label=label,
                    final_label=workflow.label_names[1],
                    reason_code=ReasonCode.R2,
                    created_at=when + timedelta(hours=1),
                )
            )
    svc.store.add_tickets(tickets)
    svc.store.add_decisions(decisions)
    svc.store.add_overrides(overrides)


def _stat(html: str, name: str) -> int:
    found = re.search(rf'id="stat-{name}">(\d+)<', html)
    assert found, name
    return int(found.group(1))


def test_dashboard_shows_the_latest_weeks_with_data(service: Service, workflow: Workflow) -> None:  # noqa: F811
    _fill(service, workflow)
    login(service, service.analyst)
    html = service.client.get("/dashboard").text
    # 12 weeks ending on 2025-05-21: 84 days of decisions, 12 overrides (every 7th day)
    assert _stat(html, "decisions") == 84
    assert _stat(html, "corrections") == 12
    assert "No data" not in html
    assert 'id="window-range">2025-02-27 to 2025-05-21<' in html
    assert "ending with the newest decision or override" in html
    assert 'id="recent-overrides"' in html  # the window's latest overrides, not today's


def test_dashboard_range_parameters(service: Service, workflow: Workflow) -> None:  # noqa: F811
    _fill(service, workflow)
    login(service, service.analyst)
    html = service.client.get("/dashboard?from=2025-03-01&to=2025-03-31").text
    assert _stat(html, "decisions") == 31
    assert 'id="window-range">2025-03-01 to 2025-03-31<' in html and "the chosen range" in html
    only_to = service.client.get("/dashboard?to=2025-01-31").text  # 12 weeks up to Jan 31
    assert _stat(only_to, "decisions") == 30  # the data start on 2025-01-02
    empty = service.client.get("/dashboard?from=2030-01-01&to=2030-01-31").text
    assert _stat(empty, "decisions") == 0 and "No data in this window" in empty
    for query, message in (
        ("from=2025-13-01", "from must be an ISO date"),
        ("to=yesterday", "to must be an ISO date"),
        ("from=2025-04-01&to=2025-03-01", "must be on or before"),
        ("from=2000-01-01&to=2025-03-01", "longer than 104 weeks"),
    ):
        response = service.client.get(f"/dashboard?{query}")
        assert response.status_code == 422, (query, response.status_code)
        assert message in response.json()["detail"]
    assert service.client.get("/dashboard?from=" + "9" * 100).status_code == 422


def test_service_figures_window(service: Service, workflow: Workflow) -> None:  # noqa: F811
    store = service.store
    empty = service_figures(store, workflow)
    assert empty.totals["decisions"] == 0 and not empty.chosen
    assert empty.last_day == datetime.now(UTC).date()  # nothing recorded: ends today
    _fill(service, workflow)
    figures = service_figures(store, workflow, weeks=4)
    assert (figures.first_day, figures.last_day) == (date(2025, 4, 24), date(2025, 5, 21))
    assert figures.totals["decisions"] == 28 and len(figures.weeks) == 5
    assert figures.to_dict()["until"] == "2025-05-22T00:00:00+00:00"
    chosen = service_figures(store, workflow, start=date(2025, 5, 1), end="2025-05-02")
    assert chosen.chosen and chosen.totals["decisions"] == 2
    with pytest.raises(InputError, match="weeks"):
        service_figures(store, workflow, weeks=0)
    assert store.latest_activity() == LAST + timedelta(hours=1)  # the newest override


def test_api_metrics_follow_the_data(service: Service, workflow: Workflow) -> None:  # noqa: F811
    _fill(service, workflow)
    payload = service.client.get("/v1/metrics", headers=service.auth(service.analyst)).json()
    assert sum(w["decisions"] for w in payload["weeks"]) == 84
    assert payload["until"].startswith("2025-05-22")


def test_champion_card_shows_no_absolute_site_packages_path(
    service: Service,  # noqa: F811
    workflow: Workflow,
) -> None:
    mv = ModelVersion(id="zs-abc123", kind=ModelKind.ZERO_SHOT, base_model=SITE)
    service.store.save_model_version(mv)
    service.store.set_alias("champion", mv.id, actor="test")
    login(service, service.analyst)
    html = service.client.get("/dashboard").text
    assert "zs-abc123" in html
    assert 'id="champion-base">all-MiniLM-L6-v2<' in html
    assert "site-packages" not in html and SITE not in html


@pytest.mark.parametrize(
    ("base_model", "shown"),
    [
        (SITE, "all-MiniLM-L6-v2"),
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("models/encoder", "models/encoder"),
        (
            "/root/.cache/huggingface/hub/models--BAAI--bge-small-en/snapshots/5c38ec7c",
            "BAAI/bge-small-en",
        ),
        ("", ""),
    ],
)
def test_base_model_name(base_model: str, shown: str) -> None:
    mv = ModelVersion(id="v", kind=ModelKind.ZERO_SHOT, base_model=base_model)
    assert ChampionSummary("v", mv).base_model_name == shown


def test_base_model_under_the_working_directory_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mv = ModelVersion(id="v", kind=ModelKind.LORA, base_model=str(tmp_path / "models" / "enc"))
    assert ChampionSummary("v", mv).base_model_name == "models/enc"
