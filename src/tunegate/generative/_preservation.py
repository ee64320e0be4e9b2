"""The packaged capability-preservation set of generative workflows: examples built from
templates whose answers are known by construction, in the five capabilities a generative
fine-tune erodes first (docs/generative.md#capability-preservation).

Every example is in the ``preservation`` slice with one tag, its capability:

- ``tool_use`` (``tool_call``): a request and three generic tools offered in
  ``metadata["tools"]`` (``get_weather``, ``convert_currency``, ``create_reminder``); the
  expected call, or no tool for a request none of them serves;
- ``citation`` (``answer``): two or three short passages in ``metadata["passages"]``, a
  question exactly one of them answers (its id is the gold document), the reference answer;
- ``summarisation`` (``answer``): one passage and "Summarise ... in one sentence", with an
  ``icontains-all`` check of its key facts and a reference summary;
- ``abstention`` (``answer``, ``answerable: false``): passages that do not hold the answer
  (a near miss: the same kind of fact about someone or something else);
- ``reasoning`` (``answer``): arithmetic and short logic with no passages, the answer as the
  reference and a check of the number or word.

Fillers (names, cities, numbers) come from ``random.Random`` seeded per capability with the
seed, so the same seed gives the same examples (and the same suite hash), and a larger
``per_slice`` extends the smaller set without changing it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

from tunegate.errors import InputError
from tunegate.records import (
    DocumentRef,
    GenerativeSuiteExample,
    OutputCheck,
    SuiteSlice,
    ToolCall,
)

__all__ = ["PRESERVATION_CAPABILITIES", "preservation_examples"]

PRESERVATION_CAPABILITIES: tuple[str, ...] = (
    "tool_use",
    "citation",
    "summarisation",
    "abstention",
    "reasoning",
)
"""The capabilities of the preservation set, each the one tag of its examples."""

_MAX_PER_SLICE = 50
"""The most examples per capability the templates give without repeating an input."""

# -- fillers -------------------------------------------------------------------------------
# Names are chosen so that none is a substring of another (the logic checks rely on it).

_NAMES = (
    "Anna", "Boris", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Victor",
)  # fmt: skip
_CITIES = (
    "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Dublin",
    "Prague", "Athens", "Warsaw", "Zurich", "Lyon", "Porto", "Munich", "Seville",
)  # fmt: skip
_JOBS = ("baker", "nurse", "teacher", "pilot", "gardener", "librarian", "plumber", "chef")
_ITEMS = ("lamp", "kettle", "chair", "notebook", "umbrella", "backpack", "scarf", "clock")
_SHOPS = ("Corner", "Harbour", "Market", "Station", "Garden", "Bridge")
_CLUBS = ("chess", "hiking", "book", "choir", "cycling", "photo")
_STREETS = ("Mill", "Oak", "Church", "Market", "Park", "Elm")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD")
_TASKS = (
    "call the dentist", "pay the rent", "buy milk", "water the plants", "book the train",
    "send the report", "renew my passport", "feed the cat",
)  # fmt: skip
_ANIMALS = ("cats", "dogs", "ducks", "owls", "horses", "penguins", "bees", "frogs")
_PHRASES = ("good morning", "thank you", "see you soon", "good night")
_LANGUAGES = ("French", "Spanish", "German", "Italian")

# -- the tools offered to tool_use examples (valid ToolSpec parameters) --------------------

_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"

_TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Get today's weather forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "minLength": 1}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "exclusiveMinimum": 0},
                "from": {"type": "string", "enum": list(_CURRENCIES)},
                "to": {"type": "string", "enum": list(_CURRENCIES)},
            },
            "required": ["amount", "from", "to"],
            "additionalProperties": False,
        },
    },
    {
        "name": "create_reminder",
        "description": "Create a reminder with a text on a date (YYYY-MM-DD)",
        "parameters": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1},
                "date": {"type": "string", "pattern": _DATE_PATTERN},
            },
            "required": ["text", "date"],
            "additionalProperties": False,
        },
    },
]
"""The generic tools every ``tool_use`` example offers in ``metadata["tools"]``."""

# An example under construction: kind, template, input and the target fields that apply
# (reference, passages, gold passage id, checks, expected_tool, answerable, missing).
_Draft = dict[str, Any]


def _passages(texts: list[str]) -> list[dict[str, str]]:
    return [{"id": f"p{i}", "text": t} for i, t in enumerate(texts, start=1)]


def _a(noun: str) -> str:
    """The noun with its indefinite article."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _number(n: int) -> OutputCheck:
    """The whole number ``n`` in the text (not as part of a longer number)."""
    return OutputCheck(type="regex", value=rf"(?<![\d.]){n}(?![\d]|\.\d)")


# -- tool_use ------------------------------------------------------------------------------


def _tool_use(rng: random.Random, n: int) -> _Draft:
    which = ("weather", "currency", "none", "reminder", "none")[n % 5]
    if which == "weather":
        city = rng.choice(_CITIES)
        text = rng.choice(
            (
                "What is the weather like in {city} today?",
                "Do I need an umbrella in {city} today?",
                "Is it cold in {city} today?",
            )
        ).format(city=city)
        call = ToolCall(name="get_weather", arguments={"city": city})
    elif which == "currency":
        amount = rng.randrange(10, 1000, 5)
        src, dst = rng.sample(_CURRENCIES, 2)
        text = rng.choice(
            ("Convert {amount} {src} to {dst}.", "How much is {amount} {src} in {dst}?")
        ).format(amount=amount, src=src, dst=dst)
        call = ToolCall(
            name="convert_currency", arguments={"amount": amount, "from": src, "to": dst}
        )
    elif which == "reminder":
        task = rng.choice(_TASKS)
        date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        text = rng.choice(
            ("Remind me to {task} on {date}.", "Set a reminder on {date} to {task}.")
        ).format(task=task, date=date)
        call = ToolCall(name="create_reminder", arguments={"text": task, "date": date})
    else:
        text = rng.choice(
            (
                f"Tell me a short joke about {rng.choice(_ANIMALS)}.",
                f"Say thank you to {rng.choice(_NAMES)} for the help.",
                f"Translate '{rng.choice(_PHRASES)}' into {rng.choice(_LANGUAGES)}.",
            )
        )
        return {"kind": "tool_call", "template": "no_tool", "input": text, "expected_tool": None}
    return {"kind": "tool_call", "template": call.name, "input": text, "expected_tool": call}


# -- citation ------------------------------------------------------------------------------


def _citation(rng: random.Random, n: int) -> _Draft:
    which = ("work_city", "price", "club_day")[n % 3]
    k = rng.choice((2, 3))
    gold = rng.randrange(k)
    if which == "work_city":
        names, cities, jobs = rng.sample(_NAMES, k), rng.sample(_CITIES, k), rng.sample(_JOBS, k)
        texts = [f"{a} works as a {j} in {c}." for a, j, c in zip(names, jobs, cities, strict=True)]
        question = f"In which city does {names[gold]} work?"
        answer = reference = cities[gold]
        checks = [OutputCheck(type="icontains", value=answer)]
    elif which == "price":
        shops, items = rng.sample(_SHOPS, k), rng.sample(_ITEMS, k)
        prices = rng.sample(range(5, 96), k)
        texts = [
            f"At the {s} shop, {_a(i)} costs {p} dollars."
            for s, i, p in zip(shops, items, prices, strict=True)
        ]
        question = f"How much does {_a(items[gold])} cost at the {shops[gold]} shop?"
        reference = f"{prices[gold]} dollars"
        checks = [_number(prices[gold])]
    else:
        clubs, days = rng.sample(_CLUBS, k), rng.sample(_WEEKDAYS, k)
        hours = [rng.randint(2, 8) for _ in range(k)]
        texts = [
            f"The {c} club meets every {d} at {h} o'clock."
            for c, d, h in zip(clubs, days, hours, strict=True)
        ]
        question = f"On which day does the {clubs[gold]} club meet?"
        answer = reference = days[gold]
        checks = [OutputCheck(type="icontains", value=answer)]
    passages = _passages(texts)
    return {
        "kind": "answer",
        "template": which,
        "input": question,
        "reference": reference,
        "passages": passages,
        "gold": passages[gold]["id"],
        "checks": checks,
    }


# -- summarisation -------------------------------------------------------------------------


def _summarisation(rng: random.Random, n: int) -> _Draft:
    which = ("shop_opening", "bridge_closure", "club_vote")[n % 3]
    name, city, job = rng.choice(_NAMES), rng.choice(_CITIES), rng.choice(_JOBS)
    item, day, count = rng.choice(_ITEMS), rng.choice(_WEEKDAYS), rng.randint(12, 90)
    if which == "shop_opening":
        text = (
            f"{name} is a {job} from {city}. Last {day}, {name} opened a small {item} shop "
            f"in the old town. On the first day, {count} people visited the shop."
        )
        question = f"Summarise the passage about {name} in one sentence."
        reference = f"{name}, a {job} from {city}, opened a small {item} shop in the old town."
        facts = [name, item, "shop"]
    elif which == "bridge_closure":
        street = rng.choice(_STREETS)
        text = (
            f"The {city} river bridge will be closed from {day} for repairs. Workers will "
            f"replace {count} old boards over two weeks. Drivers should use the {street} "
            f"Street detour."
        )
        question = f"Summarise the notice about the {city} bridge in one sentence."
        reference = (
            f"The {city} river bridge is closed for repairs from {day}, so drivers should use "
            f"the {street} Street detour."
        )
        facts = ["bridge", "repair", street]
    else:
        club = rng.choice(_CLUBS)
        text = (
            f"The {club} club of {city} will hold its yearly meeting on {day}. Members will "
            f"vote for a new leader, and {name} is the only candidate. Tea and cake will be "
            f"served after the vote."
        )
        question = f"Summarise the notice of the {club} club in one sentence."
        reference = (
            f"The {club} club of {city} meets on {day} to vote for a new leader, and {name} "
            f"is the only candidate."
        )
        facts = [club, name, "leader"]
    passages = _passages([text])
    return {
        "kind": "answer",
        "template": which,
        "input": question,
        "reference": reference,
        "passages": passages,
        "gold": passages[0]["id"],
        "checks": [OutputCheck(type="icontains-all", value=facts)],
    }


# -- abstention ----------------------------------------------------------------------------


def _abstention(rng: random.Random, n: int) -> _Draft:
    which = ("other_person", "other_item", "not_stated")[n % 3]
    if which == "other_person":
        asked, *others = rng.sample(_NAMES, 3)
        cities, jobs = rng.sample(_CITIES, 2), rng.sample(_JOBS, 2)
        texts = [
            f"{a} works as a {j} in {c}." for a, j, c in zip(others, jobs, cities, strict=True)
        ]
        question = f"In which city does {asked} work?"
        missing = asked
    elif which == "other_item":
        asked, *items = rng.sample(_ITEMS, 3)
        shop = rng.choice(_SHOPS)
        prices = rng.sample(range(5, 96), 2)
        texts = [
            f"At the {shop} shop, {_a(i)} costs {p} dollars."
            for i, p in zip(items, prices, strict=True)
        ]
        question = f"How much does {_a(asked)} cost at the {shop} shop?"
        missing = asked
    else:
        name, city, job, club = (
            rng.choice(_NAMES),
            rng.choice(_CITIES),
            rng.choice(_JOBS),
            rng.choice(_CLUBS),
        )
        texts = [f"{name} works as a {job} in {city}.", f"{name} is a member of the {club} club."]
        question = f"What is {name}'s phone number?"
        missing = "phone"
    return {
        "kind": "answer",
        "template": which,
        "input": question,
        "passages": _passages(texts),
        "answerable": False,
        "missing": missing,
    }


# -- reasoning -----------------------------------------------------------------------------


def _reasoning(rng: random.Random, n: int) -> _Draft:
    which = ("add", "order", "subtract", "weekday", "multiply")[n % 5]
    name = rng.choice(_NAMES)
    if which == "add":
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        question = (
            f"{name} has {a} apples and buys {b} more. How many apples does {name} have now? "
            "Answer with a number."
        )
        value = a + b
    elif which == "subtract":
        a = rng.randint(10, 30)
        b = rng.randint(1, a - 1)
        question = (
            f"A box holds {a} pens. {name} takes {b} of them. How many pens are left in the "
            "box? Answer with a number."
        )
        value = a - b
    elif which == "multiply":
        a, b = rng.randint(3, 12), rng.randint(2, 6)
        question = (
            f"A bus has {a} rows with {b} seats in each row. How many seats does the bus "
            "have? Answer with a number."
        )
        value = a * b
    elif which == "order":
        x, y, z = rng.sample(_NAMES, 3)
        question = (
            f"{x} is taller than {y}, and {y} is taller than {z}. Who is the shortest? "
            "Answer with one name."
        )
        checks = [
            OutputCheck(type="icontains", value=z),
            OutputCheck(type="icontains", value=x, negate=True),
            OutputCheck(type="icontains", value=y, negate=True),
        ]
        return _reasoned(which, question, z, checks)
    else:
        start, offset = rng.randrange(7), rng.randint(2, 6)
        answer = _WEEKDAYS[(start + offset) % 7]
        question = (
            f"Today is {_WEEKDAYS[start]}. What day of the week will it be in {offset} days? "
            "Answer with one word."
        )
        return _reasoned(which, question, answer, [OutputCheck(type="icontains", value=answer)])
    return _reasoned(which, question, str(value), [_number(value)])


def _reasoned(which: str, question: str, reference: str, checks: list[OutputCheck]) -> _Draft:
    return {
        "kind": "answer",
        "template": which,
        "input": question,
        "reference": reference,
        "passages": [],
        "checks": checks,
    }


_BUILDERS: dict[str, Callable[[random.Random, int], _Draft]] = {
    "tool_use": _tool_use,
    "citation": _citation,
    "summarisation": _summarisation,
    "abstention": _abstention,
    "reasoning": _reasoning,
}


def _example(tag: str, n: int, draft: _Draft) -> GenerativeSuiteExample:
    metadata: dict[str, Any] = {"capability": tag, "template": draft["template"]}
    if draft["kind"] == "tool_call":
        metadata["tools"] = copy.deepcopy(_TOOLS)
    else:
        metadata["passages"] = draft["passages"]
    if "missing" in draft:
        metadata["missing"] = draft["missing"]
    return GenerativeSuiteExample(
        id=f"pres-{tag}-{n}",
        kind=draft["kind"],
        input=draft["input"],
        reference=draft.get("reference"),
        gold_documents=[DocumentRef(id=draft["gold"])] if draft.get("gold") else [],
        answerable=draft.get("answerable", True),
        expected_tool=draft.get("expected_tool"),
        checks=draft.get("checks", []),
        slice=SuiteSlice.PRESERVATION,
        tags=[tag],
        metadata=metadata,
    )


def preservation_examples(*, seed: int = 0, per_slice: int = 6) -> list[GenerativeSuiteExample]:
    """The capability-preservation set: ``per_slice`` examples of each capability of
    :data:`PRESERVATION_CAPABILITIES` (in that order), ids ``pres-<capability>-<n>``, all in
    the ``preservation`` slice with their capability as the one tag.

    Deterministic: the same ``seed`` gives identical examples; ``per_slice=m`` is a prefix of
    ``per_slice=m + k`` within each capability. No two examples of a capability repeat an
    input with the same passages. ``per_slice`` must be 1-50.
    """
    if isinstance(per_slice, bool) or not isinstance(per_slice, int):
        raise InputError(f"per_slice must be a whole number, got {per_slice!r}")
    if not 1 <= per_slice <= _MAX_PER_SLICE:
        raise InputError(
            f"per_slice must be between 1 and {_MAX_PER_SLICE} (examples per capability), "
            f"got {per_slice}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be a whole number, got {seed!r}")
    out: list[GenerativeSuiteExample] = []
    for tag in PRESERVATION_CAPABILITIES:
        rng = random.Random(f"tunegate-preservation:{seed}:{tag}")
        seen: set[tuple[str, str]] = set()
        for n in range(per_slice):
            for _ in range(200):
                draft = _BUILDERS[tag](rng, n)
                key = (draft["input"], repr(draft.get("passages")))
                if key not in seen:
                    break
            else:  # pragma: no cover - every capability reaches _MAX_PER_SLICE (tested)
                raise InputError(
                    f"the {tag} templates ran out of distinct examples at {n}; use a smaller "
                    f"per_slice"
                )
            seen.add(key)
            out.append(_example(tag, n, draft))
    return out
