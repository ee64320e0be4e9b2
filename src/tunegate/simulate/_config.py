"""The simulation's knobs: one frozen pydantic model that round-trips to ``sim_config.json``."""

from __future__ import annotations

from datetime import date
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SHIFTS", "SimConfig", "default_catch_rates"]

SHIFTS: Final[dict[str, str]] = {
    "vpn_client": "a new remote-access client (Zscaler) replaces the VPN: VPN tickets arrive in "
    "new vocabulary ('no policy found', 'app segment unreachable') and VPN volume "
    "rises",
}
"""Post-deployment distribution shifts that :func:`generate_stream` can apply."""


def default_catch_rates() -> dict[str, tuple[float, float]]:
    """Per class: (day, night) probability that an analyst catches a wrong decision."""
    rates = {
        label: (0.88, 0.65)
        for label in (
            "account_unlock",
            "password_reset",
            "vpn_issue",
            "hardware",
            "software_install",
            "access_request",
            "email_issue",
        )
    }
    rates["security_incident"] = (0.95, 0.75)
    return rates


class SimConfig(BaseModel):
    """Configuration of the service-desk scenario. Same config + seed => byte-identical output.

    Weeks are 0-based: production runs over weeks ``0 .. weeks-1``; MFA is rolled out at the
    start of week ``rollout_week`` (``rollout_week >= weeks`` means no rollout in the window);
    historical tickets come from the ``history_weeks`` weeks before week 0.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weeks: int = Field(default=12, ge=1, le=520)
    """Production weeks simulated."""
    rollout_week: int = Field(default=6, ge=0)
    """First week (0-based) with MFA in place."""
    seed: int = Field(default=7, ge=0)
    """Seed of every random choice; also part of every id."""
    tickets_per_week: int = Field(default=250, ge=1)
    """Mean production tickets per week (each week varies by up to +-10%)."""
    history_size: int = Field(default=1500, ge=0)
    """Reviewed, labelled historical tickets from before week 0 (all pre-rollout)."""
    history_weeks: int = Field(default=26, ge=1)
    """How many weeks before week 0 the history spans."""
    heldout_core: int = Field(default=250, ge=0)
    """Held-out evaluation examples in the core slice (routine traffic, current mix)."""
    heldout_edge: int = Field(default=200, ge=0)
    """Held-out examples in the edge slice (MFA-related, two-topic, vague, night-shift terse)."""
    heldout_preservation: int = Field(default=150, ge=0)
    """Held-out examples in the capability-preservation slice (pre-rollout routine, balanced
    across classes)."""
    start_date: date = date(2025, 1, 6)
    """Monday of week 0 (UTC)."""
    night_share: float = Field(default=0.15, ge=0.0, le=0.5)
    """Share of tickets created on the night shift (22:00-06:00 UTC)."""
    typo_rate: float = Field(default=0.03, ge=0.0, le=0.5)
    """Per-word probability of a typo (doubled on the night shift)."""
    two_topic_rate: float = Field(default=0.07, ge=0.0, le=0.5)
    """Share of tickets that mention a second, unrelated topic (label = the first topic)."""
    vague_rate: float = Field(default=0.04, ge=0.0, le=0.5)
    """Share of tickets with only a weak hint of their intent."""
    policy_rate: float = Field(default=0.03, ge=0.0, le=0.5)
    """Share of policy-rule cases (lost devices are security incidents; contractor lockouts and
    admin-rights installs are access requests)."""
    mfa_incident_start: float = Field(default=0.09, ge=0.0, le=1.0)
    """Share of tickets that are MFA-related security incidents in the first rollout week."""
    mfa_incident_growth: float = Field(default=0.04, ge=0.0, le=1.0)
    """Weekly increase of that share (push-fatigue attacks grow as attackers notice)."""
    mfa_incident_max: float = Field(default=0.30, ge=0.0, le=1.0)
    """Cap on that share."""
    mfa_enrolment_start: float = Field(default=0.09, ge=0.0, le=1.0)
    """Share of routine MFA-enrolment lockouts (account_unlock) in the first rollout week."""
    mfa_enrolment_decay: float = Field(default=0.85, gt=0.0, le=1.0)
    """Weekly multiplicative decay of the enrolment share (the enrolment wave passes)."""
    mfa_enrolment_floor: float = Field(default=0.03, ge=0.0, le=1.0)
    """Enrolment share never falls below this (new starters, new phones)."""
    mfa_vpn_rate: float = Field(default=0.06, ge=0.0, le=1.0)
    """Share of MFA-related VPN problems after the rollout."""
    shift_rate: float = Field(default=0.15, ge=0.0, le=1.0)
    """Share of tickets that come from a post-deployment shift, when one is applied."""
    catch_rates: dict[str, tuple[float, float]] = Field(default_factory=default_catch_rates)
    """Class -> (day, night) probability that an analyst overrides a wrong decision; classes
    not listed use (0.85, 0.65)."""
    wrong_override_rate: float = Field(default=0.03, ge=0.0, le=0.5)
    """Probability that an override of a wrong decision names a wrong final label (noise)."""
    false_override_rate: float = Field(default=0.01, ge=0.0, le=0.5)
    """Probability that an analyst overrides a *correct* decision (to a wrong label)."""
    confirm_rate: float = Field(default=0.10, ge=0.0, le=1.0)
    """Probability that an analyst confirms a correct auto-routed decision (a reviewed
    example)."""
    confirm_rate_escalated: float = Field(default=0.90, ge=0.0, le=1.0)
    """Probability that the security team confirms a correct escalated decision, and, after the
    rollout, that the identity team confirms a correct decision on an MFA-related ticket."""
    review_rate: float = Field(default=0.85, ge=0.0, le=1.0)
    """Probability that a senior reviews an override (``review_status = reviewed``)."""
    history_label_noise: float = Field(default=0.01, ge=0.0, le=0.5)
    """Share of historical examples recorded with a wrong label (the truth file keeps both)."""
    measure_latency: bool = False
    """False: decisions carry a *modelled* latency (2 ms + 0.05 ms per character), so output is
    byte-identical. True: the measured per-ticket batch latency (not reproducible)."""

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        for label, (day, night) in self.catch_rates.items():
            if not (0.0 <= day <= 1.0 and 0.0 <= night <= 1.0):
                raise ValueError(
                    f"catch_rates[{label!r}] must be two probabilities in [0, 1], "
                    f"got ({day}, {night})"
                )
        if self.start_date.weekday() != 0:
            raise ValueError(
                f"start_date must be a Monday, got {self.start_date} "
                f"({self.start_date.strftime('%A')})"
            )
        return self

    def catch_rate(self, label: str, night: bool) -> float:
        day_rate, night_rate = self.catch_rates.get(label, (0.85, 0.65))
        return night_rate if night else day_rate

    def mfa_rates(self, week: int) -> tuple[float, float, float]:
        """(incident, enrolment, vpn) shares of MFA-related tickets in ``week`` (0 before)."""
        if week < self.rollout_week:
            return 0.0, 0.0, 0.0
        r = week - self.rollout_week
        incident = min(
            self.mfa_incident_max, self.mfa_incident_start + self.mfa_incident_growth * r
        )
        enrol = max(
            self.mfa_enrolment_floor, self.mfa_enrolment_start * self.mfa_enrolment_decay**r
        )
        return incident, enrol, self.mfa_vpn_rate
