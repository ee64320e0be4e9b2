"""Ticket streams with known ground truth: history, production, held-out, continuation.

Every stream is generated in one canonical order (history, held-out, production week 0, 1, ...)
with one seeded random generator per stream and week, and every normalized text is unique
across all of them, so streams never overlap by id or by exact text. Generating week ``w``
again (e.g. for a post-deployment continuation) replays the same canonical order first, so
``generate_stream(config, 0, weeks)`` reproduces the production stream of :func:`simulate`.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunegate.errors import InputError
from tunegate.records import SuiteSlice, Ticket, normalize_text
from tunegate.simulate._config import SHIFTS, SimConfig
from tunegate.simulate._text import KINDS, POOLS, SECOND_TOPIC, compose, fill

__all__ = [
    "LABELS",
    "GroundTruth",
    "SimTicket",
    "generate_all",
    "generate_heldout",
    "generate_history",
    "generate_stream",
    "is_night",
    "reason_for",
]

Stream = Literal["history", "production", "heldout"]

LABELS: Final[list[str]] = [
    "account_unlock",
    "password_reset",
    "vpn_issue",
    "security_incident",
    "hardware",
    "software_install",
    "access_request",
    "email_issue",
]
"""The scenario's classes (the starter workflow's labels, in its order)."""

_ROUTINE: Final = {
    "account_unlock": "unlock",
    "password_reset": "reset",
    "vpn_issue": "vpn",
    "security_incident": "security",
    "hardware": "hardware",
    "software_install": "software",
    "access_request": "access",
    "email_issue": "email",
}
_MIX_DAY: Final = [0.15, 0.14, 0.13, 0.07, 0.14, 0.14, 0.13, 0.10]
_MIX_NIGHT: Final = [0.22, 0.16, 0.20, 0.12, 0.08, 0.05, 0.04, 0.13]
_POLICY_KINDS: Final = ["policy_lost_device", "policy_contractor", "policy_admin"]
_CHANNELS: Final = ["email", "portal", "phone", "chat"]
_CHANNEL_DAY: Final = [0.35, 0.35, 0.15, 0.15]
_CHANNEL_NIGHT: Final = [0.10, 0.25, 0.30, 0.35]
_NIGHT_SITES: Final = ["Pune", "Singapore", "Austin", "Toronto"]
_DAY_PROFILE: Final = {
    6: 0.3,
    7: 0.7,
    8: 1.0,
    9: 1.3,
    10: 1.3,
    11: 1.2,
    12: 0.8,
    13: 1.1,
    14: 1.2,
    15: 1.1,
    16: 1.0,
    17: 0.7,
    18: 0.4,
    19: 0.3,
    20: 0.2,
    21: 0.2,
}


def is_night(hour: int) -> bool:
    """The night shift is 22:00-06:00 UTC."""
    return hour >= 22 or hour < 6


class GroundTruth(BaseModel):
    """What really happened with one simulated ticket (``ground_truth.jsonl``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_id: str
    label: str
    """The true class."""
    recorded_label: str
    """The label recorded in the history/eval files (differs from ``label`` for noisy history)."""
    stream: Stream
    week: int
    """0-based production week (negative for history)."""
    kind: str
    """The intent that generated the text (e.g. ``mfa_security``, ``unlock``)."""
    tags: list[str] = Field(default_factory=list)
    """Sorted scenario flags: mfa, two_topic, vague, terse, policy, shift:<name>."""
    slice: SuiteSlice | None = None
    """Evaluation slice (held-out stream only)."""


class SimTicket(BaseModel):
    """A generated ticket and its ground truth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket: Ticket
    truth: GroundTruth

    @property
    def label(self) -> str:
        return self.truth.label


def reason_for(truth: GroundTruth) -> str:
    """The reason code an analyst gives when this ticket was misrouted: R1 ambiguous (vague or
    two-topic), R3 policy rule, R2 missed signal otherwise."""
    if "policy" in truth.tags:
        return "R3"
    if "vague" in truth.tags or "two_topic" in truth.tags:
        return "R1"
    return "R2"


def _rng(config: SimConfig, *parts: object) -> random.Random:
    key = "|".join(str(p) for p in (config.seed, *parts))
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _pick(rng: random.Random, items: list[str], weights: list[float]) -> str:
    return rng.choices(items, weights=weights, k=1)[0]


def _hour(rng: random.Random, config: SimConfig, night: bool) -> int:
    if night:
        return rng.choice([22, 23, 0, 1, 2, 3, 4, 5])
    hours = list(_DAY_PROFILE)
    return rng.choices(hours, weights=[_DAY_PROFILE[h] for h in hours], k=1)[0]


class _Spec:
    """What one ticket will be before its text is written."""

    def __init__(self, kind: str, night: bool, two_topic: bool, terse: bool) -> None:
        self.kind = kind
        self.night = night
        self.two_topic = two_topic
        self.terse = terse


def _draw_kind(
    rng: random.Random, config: SimConfig, week: int, night: bool, shift: str | None
) -> str:
    if shift == "vpn_client" and rng.random() < config.shift_rate:
        return "vpn_client_shift"
    incident, enrol, vpn = config.mfa_rates(week)
    u = rng.random()
    night_boost = 1.5 if night else 1.0  # push-bombing happens while people sleep
    if u < incident * night_boost:
        return "mfa_security"
    u -= incident * night_boost
    if u < enrol:
        return "mfa_enrol"
    u -= enrol
    if u < vpn:
        return "mfa_vpn"
    label = _pick(rng, LABELS, _MIX_NIGHT if night else _MIX_DAY)
    v = rng.random()
    if v < config.policy_rate:
        return rng.choice(_POLICY_KINDS)
    if v < config.policy_rate + config.vague_rate:
        return f"vague_{label}"
    return _ROUTINE[label]


class _Writer:
    """Writes ticket texts, keeping every normalized text unique across all streams."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.seen: set[str] = set()

    def text(self, rng: random.Random, spec: _Spec, channel: str) -> str:
        kind = KINDS[spec.kind]
        for attempt in range(60):
            body = fill(rng.choice(kind.phrasings), rng)
            second = None
            if spec.two_topic:
                other = rng.choice([lab for lab in LABELS if lab != kind.label])
                second = fill(rng.choice(SECOND_TOPIC[other]), rng)
            text = compose(
                body,
                rng,
                channel=channel,
                night=spec.terse,
                second=second,
                typo_rate=self.config.typo_rate,
            )
            if attempt >= 30:  # a crowded phrasing space: add a distinguishing detail
                text = f"{text} ({fill('{site}', rng)} {rng.randrange(100, 999)})"
            key = normalize_text(text)
            if key not in self.seen:
                self.seen.add(key)
                return text
        raise RuntimeError("could not write a unique ticket text")  # pragma: no cover


def _make(
    writer: _Writer,
    rng: random.Random,
    spec: _Spec,
    *,
    ticket_id: str,
    when: datetime,
    stream: Stream,
    week: int,
    shift: str | None,
    slice_: SuiteSlice | None = None,
    recorded: str | None = None,
) -> SimTicket:
    hour = when.hour
    night = is_night(hour)
    channel = _pick(rng, _CHANNELS, _CHANNEL_NIGHT if night else _CHANNEL_DAY)
    site = rng.choice(_NIGHT_SITES) if night and rng.random() < 0.5 else rng.choice(POOLS["site"])
    text = writer.text(rng, spec, channel)
    kind = KINDS[spec.kind]
    tags = []
    if kind.mfa:
        tags.append("mfa")
    if spec.two_topic:
        tags.append("two_topic")
    if kind.vague:
        tags.append("vague")
    if spec.terse:
        tags.append("terse")
    if kind.policy:
        tags.append("policy")
    if spec.kind == "vpn_client_shift" and shift:
        tags.append(f"shift:{shift}")
    metadata = {
        "channel": channel,
        "site": site,
        "hour": hour,
        "shift": "night" if night else "day",
        "week": week,
        "weekday": when.strftime("%a").lower(),
    }
    ticket = Ticket(id=ticket_id, text=text, created_at=when, metadata=metadata)
    truth = GroundTruth(
        ticket_id=ticket_id,
        label=kind.label,
        recorded_label=recorded or kind.label,
        stream=stream,
        week=week,
        kind=spec.kind,
        tags=sorted(tags),
        slice=slice_,
    )
    return SimTicket(ticket=ticket, truth=truth)


def _moment(rng: random.Random, config: SimConfig, week: int, night: bool) -> datetime:
    day = rng.choices(range(7), weights=[1, 1, 1, 1, 1, 0.35, 0.3], k=1)[0]
    hour = _hour(rng, config, night)
    base = datetime(
        config.start_date.year, config.start_date.month, config.start_date.day, tzinfo=UTC
    )
    return base + timedelta(
        weeks=week, days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60)
    )


def _week(writer: _Writer, week: int, shift: str | None) -> list[SimTicket]:
    config = writer.config
    rng = _rng(config, "production", week, shift or "")
    n = max(1, round(config.tickets_per_week * rng.uniform(0.9, 1.1)))
    plans = []
    for _ in range(n):
        night = rng.random() < config.night_share
        when = _moment(rng, config, week, night)
        kind = _draw_kind(rng, config, week, night, shift)
        two = not KINDS[kind].vague and rng.random() < config.two_topic_rate
        plans.append((when, _Spec(kind, night, two, terse=night and rng.random() < 0.7)))
    plans.sort(key=lambda p: p[0])
    tag = f"-{shift}" if shift else ""
    return [
        _make(
            writer,
            rng,
            spec,
            ticket_id=f"tk{config.seed}-w{week:03d}{tag}-{i:04d}",
            when=when,
            stream="production",
            week=week,
            shift=shift,
        )
        for i, (when, spec) in enumerate(plans)
    ]


def generate_history(config: SimConfig, writer: _Writer | None = None) -> list[SimTicket]:
    """Labelled pre-rollout tickets from the ``history_weeks`` weeks before week 0.

    A share ``history_label_noise`` is recorded with a wrong label (``truth.recorded_label``).
    """
    writer = writer or _Writer(config)
    rng = _rng(config, "history")
    plans = []
    for _ in range(config.history_size):
        night = rng.random() < config.night_share
        week = -rng.randint(1, config.history_weeks)
        when = _moment(rng, config, week, night)
        kind = _draw_kind(rng, config, -(10**6), night, None)
        two = not KINDS[kind].vague and rng.random() < config.two_topic_rate
        noisy = rng.random() < config.history_label_noise
        plans.append(
            (when, week, _Spec(kind, night, two, terse=night and rng.random() < 0.7), noisy)
        )
    plans.sort(key=lambda p: p[0])
    out = []
    for i, (when, week, spec, noisy) in enumerate(plans):
        true = KINDS[spec.kind].label
        recorded = rng.choice([lab for lab in LABELS if lab != true]) if noisy else true
        out.append(
            _make(
                writer,
                rng,
                spec,
                ticket_id=f"tk{config.seed}-h-{i:05d}",
                when=when,
                stream="history",
                week=week,
                shift=None,
                recorded=recorded,
            )
        )
    return out


_EDGE_KINDS: Final = [
    ("mfa_security", 0.34),
    ("mfa_enrol", 0.16),
    ("mfa_vpn", 0.14),
    ("two_topic", 0.12),
    ("vague", 0.10),
    ("terse", 0.14),
]


def generate_heldout(config: SimConfig, writer: _Writer | None = None) -> list[SimTicket]:
    """The held-out evaluation stream, with its slice assignment.

    * preservation: routine pre-rollout tickets, balanced across classes (what must not regress);
    * edge: MFA-related (incidents, enrolment lockouts, VPN), two-topic, vague, night terse;
    * core: routine day-shift tickets in the post-rollout class mix.
    """
    writer = writer or _Writer(config)
    rng = _rng(config, "heldout")
    pre_weeks = list(range(-config.history_weeks, min(config.rollout_week, config.weeks)))
    post_weeks = list(range(min(config.rollout_week, config.weeks - 1), config.weeks))
    plans: list[tuple[datetime, int, _Spec, SuiteSlice]] = []
    for i in range(config.heldout_preservation):
        week = rng.choice(pre_weeks)
        label = LABELS[i % len(LABELS)]
        night = rng.random() < config.night_share
        plans.append(
            (
                _moment(rng, config, week, night),
                week,
                _Spec(_ROUTINE[label], night, False, False),
                SuiteSlice.PRESERVATION,
            )
        )
    for _ in range(config.heldout_core):
        week = rng.choice(post_weeks)
        label = _pick(rng, LABELS, _MIX_DAY)
        plans.append(
            (
                _moment(rng, config, week, False),
                week,
                _Spec(_ROUTINE[label], False, False, False),
                SuiteSlice.CORE,
            )
        )
    names = [k for k, _ in _EDGE_KINDS]
    weights = [w for _, w in _EDGE_KINDS]
    for _ in range(config.heldout_edge):
        week = rng.choice(post_weeks)
        what = _pick(rng, names, weights)
        label = _pick(rng, LABELS, _MIX_DAY)
        night = what == "terse"
        if what in ("two_topic", "terse"):
            spec = _Spec(_ROUTINE[label], night, what == "two_topic", night)
        elif what == "vague":
            spec = _Spec(f"vague_{label}", False, False, False)
        else:
            night = rng.random() < config.night_share
            spec = _Spec(what, night, False, night and rng.random() < 0.5)
        plans.append((_moment(rng, config, week, night), week, spec, SuiteSlice.EDGE))
    plans.sort(key=lambda p: (p[0], p[3].value))
    return [
        _make(
            writer,
            rng,
            spec,
            ticket_id=f"tk{config.seed}-e-{i:05d}",
            when=when,
            stream="heldout",
            week=week,
            shift=None,
            slice_=slice_,
        )
        for i, (when, week, spec, slice_) in enumerate(plans)
    ]


def _check_shift(shift: str | None) -> None:
    if shift is not None and shift not in SHIFTS:
        raise InputError(f"unknown shift {shift!r}; expected one of {sorted(SHIFTS)} or None")


def generate_stream(
    config: SimConfig, start_week: int, end_week: int, *, shift: str | None = None
) -> list[SimTicket]:
    """Production tickets of weeks ``start_week .. end_week-1`` (0-based), in time order.

    Weeks past ``config.weeks`` continue the scenario after deployment (the MFA shares keep their
    schedule); ``shift`` (see :data:`SHIFTS`) changes the traffic of the generated weeks. Texts
    never repeat those of the history, the held-out stream or earlier production weeks.
    """
    _check_shift(shift)
    if not 0 <= start_week <= end_week:
        raise InputError(
            f"need 0 <= start_week <= end_week, got start_week={start_week}, end_week={end_week}"
        )
    writer = _Writer(config)
    generate_history(config, writer)
    generate_heldout(config, writer)
    for week in range(start_week):
        _week(writer, week, None)
    out: list[SimTicket] = []
    for week in range(start_week, end_week):
        out.extend(_week(writer, week, shift))
    return out


def generate_all(config: SimConfig) -> tuple[list[SimTicket], list[SimTicket], list[SimTicket]]:
    """(history, held-out, production weeks 0..weeks-1), in the canonical order."""
    writer = _Writer(config)
    history = generate_history(config, writer)
    heldout = generate_heldout(config, writer)
    production: list[SimTicket] = []
    for week in range(config.weeks):
        production.extend(_week(writer, week, None))
    return history, heldout, production
