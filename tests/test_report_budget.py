"""The HTML size budget of the reports (issue 25, item 17)."""

from __future__ import annotations


def test_a_report_over_its_size_budget_leaves_out_its_largest_sections() -> None:
    """The size budget (issue 25, item 17) is enforced by ``page``: a section that would take
    a report over it is replaced by a note, largest first, never the first section."""
    from tunegate.report import REPORT_BUDGET_BYTES, Html, Section, page

    sections = [
        Section("Verdict", Html("<p>PASS</p>")),
        Section("Small", Html("<p>" + "s" * 1_000 + "</p>")),
        Section("Huge", Html("<p>" + "h" * 900_000 + "</p>"), anchor="huge"),
        Section("Big", Html("<p>" + "b" * 300_000 + "</p>")),
    ]
    html = page("A report", sections)
    assert len(html.encode()) <= REPORT_BUDGET_BYTES == 1_000_000
    assert "h" * 1000 not in html and "b" * 300_000 in html and "s" * 1000 in html
    assert 'id="huge"><h2>Huge</h2><p class="omitted">Left out to keep the report under' in html
    tight = page("A report", sections, budget=50_000)
    assert len(tight.encode()) <= 50_000 and tight.count('class="omitted"') == 2
    assert "<p>PASS</p>" in tight and "s" * 1000 in tight
    # within the budget nothing is touched
    small = page("A report", sections[:2])
    assert "omitted" not in small
