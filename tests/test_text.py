"""tunegate.text: the one tokenizer, n-gram helper and week bucketing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from tunegate.text import STOPWORDS, iso_week, ngrams, week_start, words


def test_word_patterns_differ_where_their_users_need_them_to() -> None:
    text = "Can’t reach VPN-2 after 2FA, wi-fi is ﬁne"
    # only "vocabulary" applies NFKC, so the ligature in "ﬁne" breaks the other two
    assert words(text) == ["can’t", "reach", "vpn-2", "after", "2fa", "wi-fi", "is", "ne"]
    assert words(text, pattern="alpha") == [
        "can’t", "reach", "vpn-2", "after", "fa", "wi-fi", "is", "ne",
    ]  # fmt: skip
    assert words(text, pattern="vocabulary") == [
        "can't", "reach", "vpn", "2", "after", "2fa", "wi", "fi", "is", "fine",
    ]  # fmt: skip


def test_ngrams_skip_stopword_edges_short_and_numeric_unigrams() -> None:
    grams = ngrams("I keep getting the push prompts 42 x")
    assert {"push", "prompts", "push prompts", "keep getting", "getting the push"} <= grams
    assert not {"i", "the", "42", "x", "the push"} & grams
    assert ngrams("push prompts", (2, 2)) == {"push prompts"}
    assert ngrams("the push", stopwords=()) == {"the", "push", "the push"}
    assert "please" in STOPWORDS
    with pytest.raises(ValueError, match="n_range"):
        ngrams("x", (2, 1))


def test_weeks_are_utc_mondays_and_iso_weeks() -> None:
    assert week_start(datetime(2025, 1, 12, 23, 59, tzinfo=UTC)) == date(2025, 1, 6)
    assert week_start(datetime(2025, 1, 13, tzinfo=UTC)) == date(2025, 1, 13)
    # Monday 01:00 at UTC+2 is still Sunday in UTC
    plus2 = timezone(timedelta(hours=2))
    assert week_start(datetime(2025, 1, 13, 1, tzinfo=plus2)) == date(2025, 1, 6)
    assert iso_week(datetime(2025, 1, 13, 1, tzinfo=plus2)) == "2025-W02"
    assert iso_week(datetime(2024, 12, 30, tzinfo=UTC)) == "2025-W01"
    assert week_start(datetime(2025, 1, 15)) == date(2025, 1, 13)  # naive = UTC
