"""Ticket text for the service-desk simulation: intents, phrasings, slot fillers and noise.

The phrasing data (kinds, slot pools, greetings, signatures, ...) lives in ``phrasing.yaml``
beside this module and is loaded once, at import. This module holds the code that turns it into
tickets: :func:`fill` fills ``{slot}`` placeholders, :func:`compose` wraps a body in the register
of its channel and shift, :func:`terse` and :func:`typos` add night-shift brevity and keyboard
noise. See docs/simulation.md for what the phrasings plant.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import yaml

__all__ = [
    "CONTEXT",
    "GREETINGS",
    "KINDS",
    "PHONE_PREFIX",
    "PHRASING",
    "POOLS",
    "SECOND_TOPIC",
    "SIGNATURES",
    "Kind",
    "Phrasing",
    "compose",
    "fill",
    "load_phrasing",
    "terse",
    "typos",
]

PHRASING_FILE: Final = "phrasing.yaml"


@dataclass(frozen=True)
class Kind:
    """One intent: its ground-truth label, scenario name and phrasings."""

    name: str
    label: str
    phrasings: list[str]
    mfa: bool = False
    """Carries the planted MFA signal."""
    policy: bool = False
    """A policy-violation scenario."""
    vague: bool = False
    """Too vague to classify (never gets a second topic)."""


@dataclass(frozen=True)
class Phrasing:
    """The contents of ``phrasing.yaml``, validated."""

    pools: dict[str, list[str]]
    kinds: dict[str, Kind]
    second_topic: dict[str, list[str]]
    greetings: list[str]
    context: list[str]
    signatures: list[str]
    phone_prefix: list[str]
    abbreviations: list[tuple[str, str]]


_SLOT = re.compile(r"\{(\w+)\}")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{PHRASING_FILE}: {where} must be a non-empty list of strings")
    return value


def load_phrasing(text: str | None = None) -> Phrasing:
    """Parse and check the phrasing data (``text`` defaults to the packaged ``phrasing.yaml``).

    Every ``{slot}`` used anywhere must name a pool; kind names must be unique.
    """
    if text is None:
        source = resources.files("tunegate.simulate").joinpath(PHRASING_FILE)
        text = source.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    pools = {name: _strings(v, f"pools.{name}") for name, v in data["pools"].items()}
    kinds: dict[str, Kind] = {}
    for i, k in enumerate(data["kinds"]):
        name = k.get("name")
        if name in kinds:
            raise ValueError(f"{PHRASING_FILE}: kinds[{i}] repeats the name {name!r}")
        kinds[name] = Kind(
            name=name,
            label=k["label"],
            phrasings=_strings(k.get("phrasings"), f"kinds[{i}] ({name}).phrasings"),
            mfa=bool(k.get("mfa", False)),
            policy=bool(k.get("policy", False)),
            vague=bool(k.get("vague", False)),
        )
    phrasing = Phrasing(
        pools=pools,
        kinds=kinds,
        second_topic={
            label: _strings(v, f"second_topic.{label}") for label, v in data["second_topic"].items()
        },
        greetings=_strings(data["greetings"], "greetings"),
        context=_strings(data["context"], "context"),
        signatures=_strings(data["signatures"], "signatures"),
        phone_prefix=_strings(data["phone_prefix"], "phone_prefix"),
        abbreviations=[(str(a), str(b)) for a, b in data["abbreviations"]],
    )
    templates = [s for k in kinds.values() for s in k.phrasings]
    templates += [s for v in phrasing.second_topic.values() for s in v]
    templates += phrasing.context + phrasing.signatures + phrasing.phone_prefix
    unknown = sorted({m for t in templates for m in _SLOT.findall(t)} - pools.keys())
    if unknown:
        raise ValueError(f"{PHRASING_FILE}: slots without a pool: {unknown}; add them to pools")
    return phrasing


PHRASING: Final = load_phrasing()
POOLS: Final = PHRASING.pools
KINDS: Final = PHRASING.kinds
SECOND_TOPIC: Final = PHRASING.second_topic
GREETINGS: Final = PHRASING.greetings
CONTEXT: Final = PHRASING.context
SIGNATURES: Final = PHRASING.signatures
PHONE_PREFIX: Final = PHRASING.phone_prefix
_ABBREV: Final = PHRASING.abbreviations


def fill(template: str, rng: random.Random) -> str:
    """Replace every ``{slot}`` with a random value from its pool."""
    return _SLOT.sub(lambda m: rng.choice(POOLS[m.group(1)]), template)


def terse(text: str, rng: random.Random) -> str:
    """The night-shift register: first clause only, lower case, abbreviations, no punctuation."""
    clause = re.split(r"[.,;:]| - ", text, maxsplit=1)[0].strip() or text
    clause = clause.lower()
    for word, short in _ABBREV:
        if rng.random() < 0.6:
            clause = re.sub(rf"\b{word}\b", short, clause)
    for filler in ("i think ", "please ", "can you ", "can someone ", "just "):
        clause = clause.replace(filler, "")
    return clause.strip()


def typos(text: str, rng: random.Random, rate: float) -> str:
    """Seeded keyboard noise: per word with probability ``rate``, swap, drop or double a char."""
    if rate <= 0.0:
        return text
    out = []
    for word in text.split(" "):
        if len(word) > 3 and rng.random() < rate:
            i = rng.randrange(1, len(word) - 1)
            op = rng.randrange(3)
            if op == 0:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            elif op == 1:
                word = word[:i] + word[i + 1 :]
            else:
                word = word[:i] + word[i] + word[i:]
        out.append(word)
    return " ".join(out)


def compose(
    body: str,
    rng: random.Random,
    *,
    channel: str,
    night: bool,
    second: str | None,
    typo_rate: float,
) -> str:
    """Wrap a filled intent body in the register of its channel and shift.

    ``channel`` is one of email / portal / phone / chat; ``night`` tickets are terse; ``second``
    is an already-filled clause about another topic (two-topic tickets).
    """
    if second is not None:
        joiner = rng.choice([". Also, unrelated: ", ", ", ". Separate thing: ", "; "])
        body = f"{body}{joiner}{second}"
    if night:
        text = terse(body, rng) if second is None else body.lower()
        if rng.random() < 0.3:
            text = text.replace("i'm ", "im ").replace("can't", "cant").replace("don't", "dont")
        return typos(text, rng, typo_rate * 2)
    sentence = body[0].upper() + body[1:]
    if not sentence.endswith((".", "?", "!")):
        sentence += rng.choice([".", ".", "!", "", "?" if "can" in sentence[:12] else "."])
    parts: list[str] = []
    if channel == "phone":
        parts.append(fill(rng.choice(PHONE_PREFIX), rng) + sentence)
    elif channel == "chat":
        parts.append(sentence.lower() if rng.random() < 0.5 else sentence)
    else:
        if (channel == "email" and rng.random() < 0.8) or (
            channel == "portal" and rng.random() < 0.3
        ):
            parts.append(rng.choice(GREETINGS))
        parts.append(sentence)
        n_context = rng.choice([0, 0, 1, 1, 2]) if channel == "email" else rng.choice([0, 0, 1])
        parts.extend(fill(c, rng) for c in rng.sample(CONTEXT, n_context))
        if (channel == "email" and rng.random() < 0.75) or (
            channel == "portal" and rng.random() < 0.2
        ):
            parts.append(fill(rng.choice(SIGNATURES), rng))
    text = "\n".join(parts) if channel == "email" else " ".join(parts)
    return typos(text, rng, typo_rate)
