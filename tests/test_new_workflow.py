"""A new workflow from scratch (issue 25): init --from/--blank, generic ids, tunegate review,
the all-core suite warning, one zero-shot version id, and the docs/workflow.md walk-through
on a 20-class BANKING77 subset."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.cli import main
from tunegate.config import describe_label, load_workflow, starter_from_labels, starter_target
from tunegate.errors import InputError
from tunegate.records import Example, ReviewStatus

ROOT = Path(__file__).resolve().parents[1]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


# -- init --from / --blank -------------------------------------------------------------------


def test_describe_label_and_target_rule() -> None:
    assert describe_label("card_arrival") == "card arrival"
    assert describe_label("CardArrival") == "card arrival"
    assert describe_label("top-up.failed") == "top up failed"
    assert [starter_target(n) for n in (1, 12, 50, 400)] == [1, 12, 50, 50]


def test_init_from_csv_writes_a_generic_valid_config(tmp_path: Path) -> None:
    data = _write_csv(
        tmp_path / "rows.csv",
        ["document", "intent"],
        [[f"text {i}", lab] for i, lab in enumerate(["card_arrival"] * 3 + ["age_limit"] * 70)]
        + [["no label here", ""], ["what is the weather", "out_of_scope"]],
    )
    config = tmp_path / "tunegate.yaml"
    assert main(["init", str(config), "--from", str(data), "--name", "bank"]) == 0
    wf = load_workflow(config)
    assert wf.name == "bank"
    assert wf.label_names == ["age_limit", "card_arrival"]
    assert wf.labels["card_arrival"].description == "card arrival"
    assert not wf.slices and not wf.routing.escalate_classes and not wf.rules
    assert "service desk" not in wf.instructions.lower()
    assert wf.instructions == "A request about"
    assert {t.label: t.min for t in wf.data_targets} == {"card_arrival": 3, "age_limit": 50}
    assert wf.id_prefix == "item"
    assert wf.model.encoder is None


def test_init_from_jsonl_with_named_columns_and_encoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(
            json.dumps({"body": f"t{i}", "y": "ab" if i % 2 else "cd"}) + "\n" for i in range(6)
        ),
        encoding="utf-8",
    )
    enc = tmp_path / "enc"
    enc.mkdir()
    (enc / "config.json").write_text("{}", encoding="utf-8")
    config = tmp_path / "w.yaml"
    code, payload = _json(
        capsys,
        [
            "init",
            str(config),
            "--from",
            str(data),
            "--label-column",
            "y",
            "--text-column",
            "body",
            "--encoder",
            str(enc),
            "--task",
            "A chat message",
        ],
    )
    assert code == 0
    assert payload["labels"] == {"ab": 3, "cd": 3}
    wf = load_workflow(config)
    assert wf.model.encoder == str(enc.resolve())
    assert wf.instructions == "A chat message about"


def test_init_from_refuses_unknown_columns_and_index_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_csv(tmp_path / "x.csv", ["text", "y"], [["a", "1"], ["b", "2"]])
    assert main(["init", str(tmp_path / "a.yaml"), "--from", str(data)]) != 0
    assert "--label-column" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "a.yaml"), "--from", str(data), "--label-column", "y"]) != 0
    assert "class indices" in capsys.readouterr().err
    assert (
        main(["init", str(tmp_path / "a.yaml"), "--from", str(data), "--label-column", "nope"]) != 0
    )
    assert not (tmp_path / "a.yaml").exists()


def test_init_blank_is_valid_and_generic(tmp_path: Path) -> None:
    config = tmp_path / "tunegate.yaml"
    assert main(["init", str(config), "--blank"]) == 0
    wf = load_workflow(config)
    assert len(wf.labels) == 2 and not wf.slices and not wf.data_targets
    assert not wf.routing.escalate_classes


def test_starter_from_labels_quotes_odd_names() -> None:
    text = starter_from_labels({"yes: no": 3, "#hash": 2, "x'y\"z": 1}, name="odd")
    assert "odd" in text  # parse_workflow ran inside; the names survive YAML
    from tunegate.config import parse_workflow

    assert parse_workflow(text).label_names == ["yes: no", "#hash", "x'y\"z"]


# -- generic ids ---------------------------------------------------------------------------


def test_ticket_ids_use_the_workflow_prefix(tmp_path: Path) -> None:
    from tunegate.io import parse_tickets

    src = tmp_path / "t.txt"
    src.write_text("first\nsecond\n", encoding="utf-8")
    assert all(t.id.startswith("tkt_") for t in parse_tickets(str(src)).tickets)
    items = parse_tickets(str(src), id_prefix="item").tickets
    assert all(re.fullmatch(r"item_[0-9a-f]{16}", t.id) for t in items)
    # the hash part is unchanged: old tkt_ ids keep their value
    assert [t.id[5:] for t in items] == [t.id[4:] for t in parse_tickets(str(src)).tickets]


def test_id_prefix_is_validated() -> None:
    from tunegate.config import Workflow, parse_workflow
    from tunegate.errors import ConfigError

    assert Workflow.model_fields["id_prefix"].default == "tkt"
    with pytest.raises(ConfigError, match="id_prefix"):
        parse_workflow(
            "name: w\nid_prefix: 'Bad Prefix'\nlabels: {a: {description: a}, b: {description: b}}\n"
        )


# -- tunegate review -----------------------------------------------------------------------


@pytest.fixture
def reviewed_store(tmp_path: Path) -> tuple[Path, Path]:
    data = _write_csv(
        tmp_path / "train.csv",
        ["text", "category"],
        [[f"where is my card {i}", "card_arrival"] for i in range(3)]
        + [[f"how old must I be {i}", "age_limit"] for i in range(3)],
    )
    config = tmp_path / "tunegate.yaml"
    assert main(["init", str(config), "--from", str(data)]) == 0
    assert (
        main(["ingest", "examples", str(data), "--map", "category=label", "--config", str(config)])
        == 0
    )
    return config, data


def test_review_list_and_mark(
    reviewed_store: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = reviewed_store
    cfg = ["--config", str(config)]
    code, listed = _json(capsys, ["review", "list", "--limit", "2", *cfg])
    assert code == 0 and listed["pending"] == 6 and len(listed["examples"]) == 2
    first = listed["examples"][0]["id"]
    code, marked = _json(capsys, ["review", "mark", first, "--reviewer", "ana", *cfg])
    assert code == 0 and marked["marked"] == 1
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(listed["examples"][1]["id"] + "\n", encoding="utf-8")
    code, marked = _json(
        capsys,
        [
            "review",
            "mark",
            "--ids-file",
            str(ids_file),
            "--status",
            "rejected",
            "--reviewer",
            "ana",
            *cfg,
        ],
    )
    assert code == 0 and marked["marked"] == 1
    # --all needs --yes; an unknown id marks nothing
    assert main(["review", "mark", "--all", "--reviewer", "ana", *cfg]) != 0
    assert main(["review", "mark", "ex_nope", "--reviewer", "ana", *cfg]) != 0
    assert "ex_nope" in capsys.readouterr().err
    assert main(["review", "mark", "--all", "--yes", *cfg]) != 0  # no reviewer
    code, marked = _json(capsys, ["review", "mark", "--all", "--yes", "--reviewer", "bo", *cfg])
    assert code == 0 and marked["marked"] == 4
    from tunegate.store import Store

    wf = load_workflow(config)
    store = Store(wf.resolved_store_url(config.parent))
    statuses = sorted((e.review_status.value, e.reviewer) for e in store.examples())
    assert statuses == [("rejected", "ana"), ("reviewed", "ana"), *[("reviewed", "bo")] * 4]
    store.close()


def test_mark_examples_library_checks_before_writing(tmp_path: Path) -> None:
    from tunegate.store import Store
    from tunegate.train import mark_examples, pending_examples

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.add_examples(
        [Example(id="ex_1", text="a", label="x"), Example(id="ex_2", text="b", label="y")]
    )
    with pytest.raises(InputError, match="ex_9"):
        mark_examples(store, "reviewed", reviewer="ana", ids=["ex_1", "ex_9"])
    assert len(pending_examples(store)) == 2  # nothing written
    with pytest.raises(InputError):
        mark_examples(store, "reviewed", reviewer="ana", ids=["ex_1"], all_pending=True)
    assert mark_examples(store, ReviewStatus.REVIEWED, reviewer="ana", ids=["ex_1"]) == 1
    assert [e.id for e in pending_examples(store, limit=5)] == ["ex_2"]
    store.close()


def test_rows_ingested_as_reviewed_need_no_review(tmp_path: Path) -> None:
    data = _write_csv(
        tmp_path / "train.csv",
        ["text", "label", "review_status", "reviewer"],
        [
            ["where is my card", "card_arrival", "reviewed", "ana"],
            ["how old must I be", "age_limit", "reviewed", "ana"],
        ],
    )
    config = tmp_path / "tunegate.yaml"
    assert main(["init", str(config), "--from", str(data)]) == 0
    assert main(["ingest", "examples", str(data), "--config", str(config)]) == 0
    from tunegate.store import Store
    from tunegate.train import pending_examples

    store = Store(load_workflow(config).resolved_store_url(tmp_path))
    assert pending_examples(store) == [] and len(store.examples()) == 2
    store.close()


def test_dataset_build_names_tunegate_review(
    reviewed_store: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = reviewed_store
    code = main(["dataset", "build", "--config", str(config)])
    err = capsys.readouterr().err
    assert code != 0
    # both ways to review exist and are named: the CLI and the service's /review page
    assert "tunegate review" in err and "/review page" in err


# -- suites: all core ----------------------------------------------------------------------


def test_all_core_suite_warns(tmp_path: Path) -> None:
    from tunegate.config import parse_workflow
    from tunegate.evaluate import SuiteSizeWarning, freeze_suite

    wf = parse_workflow("name: w\nlabels: {a: {description: a}, b: {description: b}}\n")
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(6)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suite = freeze_suite("s", rows, wf, near_duplicates=False)
    assert all(e.slice.value == "core" for e in suite.examples)
    messages = [str(w.message) for w in caught if issubclass(w.category, SuiteSizeWarning)]
    assert any(
        "all 6 in-scope examples are core" in m and "data_targets is empty" in m for m in messages
    ), messages
    # an explicit slice column: no such warning
    rows[0]["slice"] = "edge"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        freeze_suite("s2", rows, wf, near_duplicates=False)
    assert not any("are core" in str(w.message) for w in caught)


def test_freeze_drop_leaked_leaves_overlaps_out() -> None:
    from tunegate.config import parse_workflow
    from tunegate.errors import LeakageError
    from tunegate.evaluate import freeze_suite

    wf = parse_workflow("name: w\nlabels: {a: {description: a}, b: {description: b}}\n")
    rows = [{"id": f"s{i}", "text": f"text {i}", "label": "ab"[i % 2]} for i in range(4)]
    with pytest.raises(LeakageError):
        freeze_suite("s", rows, wf, training_texts=["Text 1"], near_duplicates=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suite = freeze_suite(
            "s", rows, wf, training_texts=["Text 1"], near_duplicates=False, drop_leaked=True
        )
    assert [e.id for e in suite.examples] == ["s0", "s2", "s3"]
    assert any("s1" in str(w.message) for w in caught)


# -- one zero-shot version id ---------------------------------------------------------------


class _Encoder:
    def __init__(self, path: str) -> None:
        self.path = path

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        x = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_eval_and_registry_give_the_zero_shot_model_one_id(tmp_path: Path) -> None:
    from tunegate.config import parse_workflow
    from tunegate.models import ZeroShotClassifier, default_encoder_path, zero_shot_version_id
    from tunegate.store import Store
    from tunegate.train import ensure_champion

    wf = parse_workflow(
        "name: w\ninstructions: A message about\n"
        "labels: {a: {description: apples}, b: {description: bananas}}\n"
    )
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    champion = ensure_champion(store, wf)
    clf = ZeroShotClassifier(wf, encoder=_Encoder(default_encoder_path()))
    assert clf.version == champion == zero_shot_version_id(wf)
    # a different prompt is a different model
    other = wf.model_copy(update={"instructions": "A note about"})
    assert zero_shot_version_id(other) != champion
    store.close()


# -- the docs/workflow.md walk-through ---------------------------------------------------------


def _docs_commands() -> list[str]:
    text = (ROOT / "docs" / "workflow.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def _subset(src: Path, dst: Path, labels: list[str], per_label: int, label_header: str) -> int:
    with src.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    taken: dict[str, int] = dict.fromkeys(labels, 0)
    out = []
    for row in rows:
        if row["category"] in taken and taken[row["category"]] < per_label:
            taken[row["category"]] += 1
            out.append([row["text"], row["category"]])
    _write_csv(dst, ["text", label_header], out)
    return len(out)


@pytest.mark.slow
def test_new_workflow_walkthrough_follows_the_docs(
    tmp_path: Path,
    shared_data: Path,
    encoder_path: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/workflow.md, command by command, on 20 BANKING77 classes: CLI only, no YAML
    edited by hand."""
    source = shared_data / "banking77"
    with (source / "train.csv").open(encoding="utf-8", newline="") as fh:
        classes = sorted({row["category"] for row in csv.DictReader(fh)})[::4][:20]
    assert len(classes) == 20
    n_train = _subset(source / "train.csv", tmp_path / "train.csv", classes, 15, "category")
    _subset(source / "test.csv", tmp_path / "test.csv", classes, 8, "label")
    monkeypatch.chdir(tmp_path)

    steps = [
        [
            "init",
            "--from",
            "train.csv",
            "--name",
            "banking",
            "--task",
            "A bank customer message",
            "--encoder",
            encoder_path,
        ],
        ["ingest", "examples", "train.csv", "--map", "category=label"],
        ["review", "list", "--limit", "20"],
        ["review", "mark", "--all", "--yes", "--reviewer", "ana"],
        ["suite", "freeze", "test.csv", "--name", "holdout", "--drop-leaked"],
        ["eval", "zero-shot", "--suite", "holdout"],
        ["eval", "knn", "--suite", "holdout"],
        ["runs"],
    ]
    # the steps are the page's commands, in its order (the encoder is this machine's)
    documented = _docs_commands()
    assert len(documented) == len(steps) + 1
    for argv, line in zip(steps, documented, strict=False):
        assert line.startswith("tunegate " + " ".join(argv[:2])), (argv, line)
        if argv[0] != "init":
            assert line == "tunegate " + " ".join(argv), line
    assert documented[-1].startswith("tunegate compare ")

    results = []
    for argv in steps:
        code, payload = _json(capsys, argv)
        assert code == 0, (argv, payload)
        results.append(payload)
    init, ingest, listed, marked, suite, zero_shot, knn, runs = results
    assert len(init["labels"]) == 20 and init["label_column"] == "category"
    assert ingest["added"] == n_train and listed["pending"] == n_train
    assert marked["marked"] == n_train
    assert suite["slices"]["core"] == suite["examples"] > 100
    assert any("are core" in w for w in suite["warnings"])
    assert [r["id"] for r in runs] == [knn["run"], zero_shot["run"]]
    wf = load_workflow(tmp_path / "tunegate.yaml")
    from tunegate.models import zero_shot_version_id

    assert zero_shot["model_version"] == zero_shot_version_id(wf)
    # no hand-edited YAML: the config is what init wrote, with generic ids
    assert wf.id_prefix == "item" and not wf.slices
    assert knn["overall"]["accuracy"]["estimate"] > zero_shot["overall"]["accuracy"]["estimate"]

    capsys.readouterr()
    code = main(["compare", zero_shot["run"], knn["run"]])
    assert code in (0, 1, 2)
    assert "verdict" in capsys.readouterr().out.lower()
