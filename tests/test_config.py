from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import load_workflow, parse_workflow, starter_yaml
from tunegate.errors import ConfigError


def test_starter_is_valid_and_round_trips() -> None:
    wf = parse_workflow(starter_yaml())
    assert "security_incident" in wf.protected_labels
    again = parse_workflow(wf.to_yaml())
    assert again == wf


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("clarify_threshold: 0.6", "clarify_threshold: 1.6"),
            r"tunegate.yaml:\d+: routing.clarify_threshold",
        ),
        (
            ("  clarify_threshold: 0.6", "  clarify_threshold: 0.6\n  colour: red"),
            r"unknown key 'routing.colour'; allowed here: "
            r"\['clarify_threshold', 'escalate_classes', 'target_clarify_rate', 'target_risk'\]",
        ),
        (("security_incident: 0.4", "nonsense_label: 0.4"), r"unknown label 'nonsense_label'"),
        (("name: service_desk ", "nme: service_desk "), r"unknown key 'nme'"),
        (('text_regex: "\\\\b(mfa', 'text_regex: "\\\\b((mfa'), r"not a valid regular expression"),
        (
            ("  shift: {eq: night}", "  shift: {equals: night}"),
            r"unknown key 'slices.night_shift.metadata.shift.equals'",
        ),
    ],
)
def test_bad_config_names_key_line_and_allowed(edit: tuple[str, str], expected: str) -> None:
    text = starter_yaml()
    assert edit[0] in text, edit[0]
    with pytest.raises(ConfigError, match=expected):
        parse_workflow(text.replace(edit[0], edit[1], 1))


def test_line_number_is_the_offending_line() -> None:
    text = starter_yaml().replace("clarify_threshold: 0.6", "clarify_threshold: -1")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "clarify_threshold: -1" in s)
    with pytest.raises(ConfigError, match=rf"tunegate.yaml:{line}: "):
        parse_workflow(text)


def test_not_yaml_and_not_mapping() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_workflow("labels: [unclosed")
    with pytest.raises(ConfigError, match="mapping"):
        parse_workflow("- a\n- b\n")


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tunegate init"):
        load_workflow(tmp_path / "nope.yaml")


def test_slices_match_text_and_metadata() -> None:
    wf = parse_workflow(starter_yaml())
    assert wf.slice_tags("Authenticator app push prompts keep coming", {}) == ["mfa_related"]
    assert wf.slice_tags("printer jam", {"shift": "night"}) == ["night_shift"]
    assert wf.slice_tags("printer jam", {"shift": "day"}) == []


def test_init_writes_valid_file_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "tunegate.yaml"
    assert main(["init", str(target)]) == 0
    load_workflow(target)
    assert main(["init", str(target)]) == 2
    assert main(["init", str(target), "--force"]) == 0
