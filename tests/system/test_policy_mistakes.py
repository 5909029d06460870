"""Mistakes a newcomer makes with the policy file and the catalog location are refused with
one clear line (naming the key, the line, the option), never loaded as something weaker;
``govrag policy check`` shows what a policy would do before anything is ingested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.policy import Policy, load_policy, parse_policy, unknown_keys
from testsupport.paths import REPO

GOVRAG = Path(sys.executable).parent / "govrag"
GOOD = """\
version: 1
access:
  - match: {source: pdf, path: "finance/**"}
    allow: [["group:finance"]]
retention:
  - match: {}
    keep_for: 365d
"""


def govrag(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    return subprocess.run(
        [str(GOVRAG), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home.parent,
        env=base | {"GOVRAG_HOME": str(home)} | (env or {}),
    )


@pytest.mark.parametrize(
    "text, key, close, where",
    [
        (GOOD.replace("retention:", "retension:"), "retension", "retention", "at the top level"),
        (GOOD.replace("access:", "acess:"), "acess", "access", "at the top level"),
        (GOOD.replace("{source: pdf,", "{sorce: pdf,"), "sorce", "source", "in access[0].match"),
        (GOOD.replace("keep_for:", "keepfor:"), "keepfor", "keep_for", "in retention[0]"),
        (GOOD + "audit:\n  store_query: true\n", "store_query", "store_query_text", "in audit"),
        (GOOD + "sources:\n  - match: {path: x}\n    ful_export: true\n", "ful_export", "full_export", "in sources[0]"),
        (GOOD + "colour: blue\n", "colour", None, "at the top level"),
    ],
)
def test_an_unknown_key_at_any_level_names_the_key_and_the_closest_valid_one(
    tmp_path: Path, text: str, key: str, close: str | None, where: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert f"unknown key {key!r} {where}" in str(err.value) and str(path) in str(err.value)
    assert (f"did you mean {close!r}?" if close else "docs/policy.md") in (err.value.hint or "")


def test_every_key_the_reference_documents_is_known() -> None:
    docs = (REPO / "docs" / "policy.md").read_text()
    import re

    import yaml

    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", docs, re.S).group(1))
    assert unknown_keys(example, Policy) == []
    assert parse_policy(example).retention


def test_malformed_yaml_names_the_line_and_column_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\naccess:\n  - match: {source: pdf\n    allow: x\n")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert "line 4, column" in str(err.value) and "\n" not in str(err.value)
    assert err.value.hint and "\n" not in err.value.hint


def test_a_wrong_policy_option_path_is_named_as_the_option(tmp_path: Path) -> None:
    done = govrag("ingest", "--policy", str(tmp_path / "nope.yaml"), str(tmp_path), home=tmp_path / "home")
    assert done.returncode == 2 and "nope.yaml not found" in done.stderr
    assert "hint: set --policy" in done.stderr and "GOVRAG_POLICY" not in done.stderr


def test_a_misspelt_policy_stops_ingest_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(GOOD.replace("retention:", "retension:"))
    done = govrag("ingest", "--policy", str(tmp_path / "policy.yaml"), str(tmp_path), home=tmp_path / "home")
    assert done.returncode == 2, done.stderr
    assert "unknown key 'retension'" in done.stderr and "did you mean 'retention'?" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "home" / "catalog.sqlite3").exists()


def test_a_catalog_url_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    done = govrag(
        "status",
        home=tmp_path / "home",
        env={"GOVRAG_DATABASE_URL": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"},
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (tmp_path / "no").exists()


def test_a_new_catalog_beside_an_index_with_vectors_is_refused(
    tmp_path: Path, sqlite_stores, embedder, sample_corpus: Path, make_ingestor
) -> None:
    from governance.stores import Stores

    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    sqlite_stores.close()
    moved = sqlite_stores.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'typo.sqlite3'}"})
    with pytest.raises(ConfigError, match="holds .* vectors"):
        Stores.open(moved)
    assert not (tmp_path / "typo.sqlite3").exists()
    Stores.open(sqlite_stores.settings).close()  # the right catalog still opens


# -- policy check ----------------------------------------------------------------------------------
def test_policy_check_shows_what_ingest_then_does(
    tmp_path: Path, sqlite_stores, embedder, sample_corpus: Path, make_ingestor
) -> None:
    """The verdicts of ``govrag policy check`` (subprocess, nothing written) are what the
    ingest of the same corpus then does: the same documents quarantined for the same
    reasons, the same expiries (to the minute), and no catalog before the ingest."""
    from testsupport.paths import SAMPLE_POLICY

    done = govrag("policy", "check", str(SAMPLE_POLICY), str(sample_corpus), "--json", home=tmp_path / "check")
    assert done.returncode == 0, done.stderr
    verdicts = {d["document_id"]: d for d in json.loads(done.stdout)["documents"]}
    assert not (tmp_path / "check").exists()
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    quarantined = {q.path: q.reason for q in summary.quarantine}
    checked = {v["path"]: v["reason"] for v in verdicts.values() if v["outcome"] == "quarantined"}
    assert {Path(p).name: r for p, r in quarantined.items()} == {Path(p).name: r for p, r in checked.items()}
    indexed = [d for d, v in verdicts.items() if v["outcome"] == "indexed"]
    assert indexed and sorted(indexed) == sorted(sqlite_stores.catalog.documents.select_documents())
    for doc in indexed:
        # Rules counted from the ingest see two clocks (the check's, the ingest's) seconds
        # apart; a wrong anchor (the document's own date instead) would be months off.
        checked = datetime.fromisoformat(verdicts[doc]["expires_at"])
        stored = sqlite_stores.catalog.documents.document_row(doc)["expires_at"]
        stored = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
        assert abs(stored - checked) < timedelta(minutes=10), doc


def test_policy_check_of_a_bad_policy_exits_2(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(GOOD.replace('allow: [["group:finance"]]', 'allow: [["finance"]]'))
    done = govrag("policy", "check", str(tmp_path / "p.yaml"), home=tmp_path / "home")
    assert done.returncode == 2 and "access" in done.stderr and "Traceback" not in done.stderr


# -- warnings a run must not keep to itself -------------------------------------------------------
def test_an_ingest_without_any_policy_warns(
    tmp_path: Path, sqlite_stores, embedder, sample_corpus: Path, make_ingestor
) -> None:

    sqlite_stores.settings = sqlite_stores.settings.model_copy(update={"policy": None})
    sqlite_stores.policy = Policy()
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus / "handbook"])
    assert any("no policy file" in w for w in summary.warnings)


def test_an_export_wholly_past_retention_says_so_with_the_hint(
    tmp_path: Path, sqlite_stores, embedder, make_ingestor
) -> None:
    from testsupport.permission_exports import conv, slack_export

    sqlite_stores.policy = parse_policy(
        {"retention": [{"match": {}, "keep_for": "1d"}], "workspaces": {"default": "source-members"}}
    )
    old = slack_export(tmp_path / "old", [conv("C1", "general", "public", ["U1"], "an old message")], at=0)
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([old])
    assert summary.expired_skipped and not summary.new
    assert any(w.startswith("all ") and "from: ingested" in w for w in summary.warnings)


def test_status_and_doctor_count_documents_without_expiry(
    tmp_path: Path, sqlite_stores, embedder, sample_corpus: Path, make_ingestor
) -> None:

    sqlite_stores.policy = parse_policy(
        {
            "access": [{"match": {}, "allow": [["group:all"]]}],
            "retention": [{"match": {"path": "finance/**"}, "keep_for": "365d"}],
        }
    )
    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    counts = sqlite_stores.catalog.runs.status_counts()
    assert counts["documents_without_expiry"] >= 1
    assert counts["documents_without_expiry"] < counts["documents"]["active"]
