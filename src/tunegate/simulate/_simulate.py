"""``simulate``: generate the scenario, serve it with the champion, simulate analysts, write files.

Output folder (every file JSONL of tunegate records unless noted, keys sorted, one record a
line, so the same config and seed give byte-identical files):

=========================  ==============================================================
tickets.jsonl              production tickets, weeks 0..weeks-1 (``Ticket``)
decisions.jsonl            the champion's decision for each (``Decision``)
overrides.jsonl            analysts' corrections (``Override``)
confirmed_examples.jsonl   analysts' confirmations of correct decisions (``Example``,
                           source ``override``, reviewed)
history_examples.jsonl     reviewed historical examples from before week 0 (``Example``,
                           source ``historical``)
eval_examples.jsonl        the held-out stream (``SuiteExample`` with ``slice``)
ground_truth.jsonl         the truth of every ticket of every stream (``GroundTruth``)
sim_config.json            the config, the champion version and the file counts
summary.json               weekly counts and error rates (what the scenario did)
=========================  ==============================================================
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.documents import Simulation
from tunegate.errors import InputError
from tunegate.records import (
    Decision,
    Example,
    ExampleSource,
    Override,
    ReviewStatus,
    SuiteExample,
)
from tunegate.simulate._analysts import simulate_analysts
from tunegate.simulate._config import SimConfig
from tunegate.simulate._generate import LABELS, SimTicket, generate_all
from tunegate.simulate._serve import Champion, default_champion, make_decisions, model_version_of

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "FILES",
    "INGEST_ORDER",
    "SimResult",
    "dumps_record",
    "ingest_simulation",
    "simulate",
    "summarize",
    "write_jsonl",
]

FILES: dict[str, str] = {
    "tickets": "tickets.jsonl",
    "decisions": "decisions.jsonl",
    "overrides": "overrides.jsonl",
    "confirmed_examples": "confirmed_examples.jsonl",
    "history_examples": "history_examples.jsonl",
    "eval_examples": "eval_examples.jsonl",
    "ground_truth": "ground_truth.jsonl",
    "sim_config": "sim_config.json",
    "summary": "summary.json",
}
"""Name of each output file."""

FORMAT = "tunegate-sim/1"


@dataclass
class SimResult:
    """What :func:`simulate` wrote, and the records in memory."""

    out_dir: Path
    config: SimConfig
    champion_version: str
    files: dict[str, Path]
    history: list[SimTicket]
    heldout: list[SimTicket]
    production: list[SimTicket]
    decisions: list[Decision]
    overrides: list[Override]
    confirmations: list[Example]
    history_examples: list[Example]
    eval_examples: list[SuiteExample]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "history": len(self.history),
            "heldout": len(self.heldout),
            "tickets": len(self.production),
            "decisions": len(self.decisions),
            "overrides": len(self.overrides),
            "confirmations": len(self.confirmations),
        }


def dumps_record(record: BaseModel | dict[str, Any]) -> str:
    """One canonical JSON line: keys sorted, no spaces, UTF-8 kept."""
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write records as canonical JSONL (``\\n`` line ends); returns how many were written."""
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for record in records:
            fh.write(dumps_record(record) + "\n")
            n += 1
    return n


def _history_examples(
    history: Sequence[SimTicket], workflow: Workflow, config: SimConfig
) -> list[Example]:
    reviewers = [f"senior.{i:02d}" for i in range(1, 5)]
    return [
        Example(
            id=f"ex-{s.ticket.id}",
            text=s.ticket.text,
            label=s.truth.recorded_label,
            source=ExampleSource.HISTORICAL,
            reviewer=reviewers[i % len(reviewers)],
            review_status=ReviewStatus.REVIEWED,
            slice_tags=workflow.slice_tags(s.ticket.text, s.ticket.metadata),
            metadata={**s.ticket.metadata, "ticket_ref": s.ticket.id},
            ticket_id=None,
            created_at=s.ticket.created_at,
        )
        for i, s in enumerate(history)
    ]


def _eval_examples(heldout: Sequence[SimTicket], workflow: Workflow) -> list[SuiteExample]:
    out = []
    for s in heldout:
        assert s.truth.slice is not None
        out.append(
            SuiteExample(
                id=s.ticket.id,
                text=s.ticket.text,
                label=s.truth.label,
                slice=s.truth.slice,
                tags=workflow.slice_tags(s.ticket.text, s.ticket.metadata),
                metadata={**s.ticket.metadata, "created_at": s.ticket.created_at.isoformat()},
            )
        )
    return out


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize(
    production: Sequence[SimTicket],
    decisions: Sequence[Decision],
    overrides: Sequence[Override],
    config: SimConfig,
) -> dict[str, Any]:
    """Weekly counts of tickets, misroutes and overrides by reason code, and error rates of
    MFA-related against other tickets before and after the rollout."""
    truth = {s.ticket.id: s.truth for s in production}
    weeks: dict[int, dict[str, Any]] = {
        w: {
            "week": w,
            "tickets": 0,
            "misrouted": 0,
            "mfa_tickets": 0,
            "mfa_misrouted": 0,
            "overrides": {"R1": 0, "R2": 0, "R3": 0, "R4": 0},
        }
        for w in range(config.weeks)
    }
    for s in production:
        weeks[s.truth.week]["tickets"] += 1
        weeks[s.truth.week]["mfa_tickets"] += "mfa" in s.truth.tags
    groups: Counter[str] = Counter()
    for d in decisions:
        t = truth[d.ticket_id]
        wrong = d.label != t.label
        row = weeks[t.week]
        row["misrouted"] += wrong
        row["mfa_misrouted"] += wrong and "mfa" in t.tags
        phase = "post" if t.week >= config.rollout_week else "pre"
        group = f"{phase}_{'mfa' if 'mfa' in t.tags else 'other'}"
        groups[group + "_n"] += 1
        groups[group + "_wrong"] += wrong
        if t.label == "security_incident" and "mfa" in t.tags:
            groups["mfa_security_n"] += 1
            groups["mfa_security_fn"] += d.label != "security_incident"
    for o in overrides:
        weeks[truth[o.ticket_id].week]["overrides"][o.reason_code.value] += 1
    pre_n = groups["pre_other_n"] + groups["pre_mfa_n"]
    return {
        "weekly": [weeks[w] for w in sorted(weeks)],
        "accuracy_pre_rollout": _rate(
            pre_n - groups["pre_other_wrong"] - groups["pre_mfa_wrong"], pre_n
        ),
        "error_rate_post_mfa": _rate(groups["post_mfa_wrong"], groups["post_mfa_n"]),
        "error_rate_post_other": _rate(groups["post_other_wrong"], groups["post_other_n"]),
        "mfa_security_incident_fnr": _rate(groups["mfa_security_fn"], groups["mfa_security_n"]),
        "overrides_by_reason": dict(
            sorted(Counter(o.reason_code.value for o in overrides).items())
        ),
        "overrides_reviewed": sum(o.review_status == ReviewStatus.REVIEWED for o in overrides),
    }


def _check_workflow(workflow: Workflow) -> None:
    missing = [name for name in LABELS if name not in workflow.labels]
    if missing:
        raise InputError(
            f"workflow {workflow.name!r} lacks the simulation's labels {missing}; "
            f"the service-desk scenario needs {LABELS} (use `tunegate init`)"
        )


def simulate(
    config: SimConfig,
    out_dir: str | Path,
    *,
    champion: Champion | None = None,
    workflow: Workflow | None = None,
) -> SimResult:
    """Run the scenario and write its files to ``out_dir`` (created if needed).

    ``champion`` serves the production stream (default: the workflow's zero-shot classifier,
    i.e. the pre-rollout model); ``workflow`` defaults to the starter service-desk workflow.
    """
    workflow = workflow or parse_workflow(starter_yaml())
    _check_workflow(workflow)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; pass a folder path")
    out.mkdir(parents=True, exist_ok=True)
    history, heldout, production = generate_all(config)
    model = champion if champion is not None else default_champion(workflow)
    version = model_version_of(model)
    from tunegate._progress import track

    decisions: list[Decision] = []
    batch = 256
    chunks = [production[i : i + batch] for i in range(0, len(production), batch)]
    for chunk in track(chunks, description="serving the production stream"):
        decisions.extend(
            make_decisions(
                model, [s.ticket for s in chunk], workflow, measure_latency=config.measure_latency
            )
        )
    analysts = simulate_analysts(production, decisions, config, workflow)
    history_examples = _history_examples(history, workflow, config)
    eval_examples = _eval_examples(heldout, workflow)
    summary = summarize(production, decisions, analysts.overrides, config)

    files = {key: out / name for key, name in FILES.items()}
    write_jsonl(files["tickets"], (s.ticket for s in production))
    write_jsonl(files["decisions"], decisions)
    write_jsonl(files["overrides"], analysts.overrides)
    write_jsonl(files["confirmed_examples"], analysts.confirmations)
    write_jsonl(files["history_examples"], history_examples)
    write_jsonl(files["eval_examples"], eval_examples)
    write_jsonl(files["ground_truth"], (s.truth for s in [*history, *heldout, *production]))
    result = SimResult(
        out_dir=out,
        config=config,
        champion_version=version,
        files=files,
        history=history,
        heldout=heldout,
        production=production,
        decisions=decisions,
        overrides=analysts.overrides,
        confirmations=analysts.confirmations,
        history_examples=history_examples,
        eval_examples=eval_examples,
        summary=summary,
    )
    meta = {
        "format": FORMAT,
        "config": config.model_dump(mode="json"),
        "workflow": workflow.name,
        "champion_version": version,
        "counts": result.counts,
    }
    files["sim_config"].write_text(
        json.dumps(meta, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )
    files["summary"].write_text(
        json.dumps(summary, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )
    return result


INGEST_ORDER: tuple[tuple[Literal["tickets", "decisions", "overrides", "examples"], str], ...] = (
    ("tickets", "tickets"),
    ("decisions", "decisions"),
    ("overrides", "overrides"),
    ("examples", "history_examples"),
    ("examples", "confirmed_examples"),
)
"""(record kind, file key) loaded by :func:`ingest_simulation`, in order. The held-out
``eval_examples.jsonl`` is deliberately *not* loaded as examples: it becomes a frozen suite
(``tunegate suite freeze``), never training data."""


def ingest_simulation(store: Store, out_dir: str | Path, *, workflow: Workflow) -> list[Any]:
    """Load a simulation folder into ``store`` with :func:`tunegate.io.ingest_file`.

    Also records the folder's ``sim_config.json`` and ``summary.json`` as a
    :class:`~tunegate.documents.Simulation` document (key: the folder name). Returns one
    IngestReport per file.
    """
    from tunegate.io import ingest_file

    folder = Path(out_dir)
    config_file = folder / FILES["sim_config"]
    if not config_file.exists():
        raise InputError(
            f"{folder} has no {FILES['sim_config']}; run `tunegate simulate --out {folder}` first"
        )
    reports = [
        ingest_file(store, kind, folder / FILES[key], workflow=workflow)
        for kind, key in INGEST_ORDER
    ]
    meta = json.loads(config_file.read_text(encoding="utf-8"))
    summary_file = folder / FILES["summary"]
    if summary_file.exists():
        meta["summary"] = json.loads(summary_file.read_text(encoding="utf-8"))
    meta["eval_examples"] = str((folder / FILES["eval_examples"]).resolve())
    meta["ground_truth"] = str((folder / FILES["ground_truth"]).resolve())
    store.documents(Simulation).put(folder.resolve().name, Simulation.model_validate(meta))
    return reports
