"""Hostile export zips are refused as a whole, with a clear error, writing nothing outside
the work dir: path traversal, absolute paths, symlinks, zip bombs (ratio, total size, entry
count), duplicate names, non-UTF-8 names."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from governance.errors import SourceError
from governance.policy import Policy
from ingest.sources import slack
from ingest.sources.archive import ArchiveLimits, HostileArchive, extract_zip
from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, small_slack_export, write_slack_export

BASE = {"users.json": json.dumps([SUser("U1", "alice", "a@x.example").as_json()]), "channels.json": "[]"}


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes | str]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in [*BASE.items(), *entries]:
            zf.writestr(name, data)
    return path


def _refused(path: Path, reason: str, tmp_path: Path) -> HostileArchive:
    assert slack.detect(path)
    with pytest.raises(HostileArchive) as exc:
        list(slack.discover(path, policy=Policy()))
    err = exc.value
    assert err.reason == reason, err
    assert str(path) in str(err) and err.hint and "nothing from it was ingested" in err.hint
    assert isinstance(err, SourceError)
    work = tmp_path / "home" / "work"
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())  # nothing extracted, no leftovers
    return err


def test_path_traversal(tmp_path: Path) -> None:
    z = _zip(tmp_path / "t.zip", [("general/../../evil.txt", "x")])
    err = _refused(z, "path_traversal", tmp_path)
    assert "general/../../evil.txt" in str(err)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "home" / "evil.txt").exists()


def test_backslash_traversal(tmp_path: Path) -> None:
    _refused(_zip(tmp_path / "t.zip", [("..\\..\\evil.txt", "x")]), "path_traversal", tmp_path)


def test_absolute_paths(tmp_path: Path) -> None:
    target = tmp_path / "abs-evil.txt"
    _refused(_zip(tmp_path / "a.zip", [(str(target), "x")]), "absolute_path", tmp_path)
    assert not target.exists()
    _refused(_zip(tmp_path / "w.zip", [("C:/Windows/evil.txt", "x")]), "absolute_path", tmp_path)


def test_symlink_entry(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("general/2026-01-01.json")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    _refused(_zip(tmp_path / "s.zip", [(info, "/etc/passwd")]), "symlink", tmp_path)


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    z = _zip(tmp_path / "b.zip", [("general/2026-01-01.json", b"\x00" * (8 * 1024 * 1024))])
    assert z.stat().st_size < 100_000
    err = _refused(z, "zip_bomb", tmp_path)
    assert "compression ratio" in str(err)


def test_total_size_and_entry_count_limits(tmp_path: Path) -> None:
    z = _zip(tmp_path / "big.zip", [(f"general/2026-01-{i:02d}.json", os.urandom(4000).hex()) for i in range(1, 21)])
    with pytest.raises(HostileArchive) as exc:
        extract_zip(z, ArchiveLimits(max_total_bytes=50_000), dest_root=tmp_path / "work")
    assert exc.value.reason == "too_large"
    with pytest.raises(HostileArchive) as exc:
        extract_zip(z, ArchiveLimits(max_entries=10), dest_root=tmp_path / "work")
    assert exc.value.reason == "too_many_entries"
    with pytest.raises(HostileArchive) as exc:
        extract_zip(z, ArchiveLimits(max_entry_bytes=1000), dest_root=tmp_path / "work")
    assert exc.value.reason == "too_large"
    assert not any((tmp_path / "work").iterdir()) if (tmp_path / "work").exists() else True
    # within the limits it extracts
    out = extract_zip(z, ArchiveLimits(max_total_bytes=10**6, max_entries=100), dest_root=tmp_path / "work")
    assert len(list((out / "general").iterdir())) == 20


def test_duplicate_names(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        z = _zip(tmp_path / "d.zip", [("general/2026-01-01.json", "[]"), ("general/2026-01-01.json", "[]")])
    _refused(z, "duplicate_name", tmp_path)
    # also names that collide on a case-insensitive disk
    _refused(_zip(tmp_path / "c.zip", [("Users.json", "[]")]), "duplicate_name", tmp_path)
    # and a name that is both a file and a folder
    _refused(
        _zip(tmp_path / "f.zip", [("general", "x"), ("general/2026-01-01.json", "[]")]), "duplicate_name", tmp_path
    )


def test_non_utf8_name(tmp_path: Path) -> None:
    z = _zip(tmp_path / "n.zip", [("general/PLACEHOLDER.json", "[]")])
    data = z.read_bytes()
    assert data.count(b"PLACEHOLDER") == 2  # local header and central directory
    z.write_bytes(data.replace(b"PLACEHOLDER", b"caf\xe9\xff\xfeHOLDR"))
    err = _refused(z, "non_utf8_name", tmp_path)
    assert "UTF-8" in str(err)


def test_utf8_names_without_the_flag_are_accepted(tmp_path: Path) -> None:
    # Many tools write UTF-8 names without setting the flag; those decode fine.
    z = _zip(tmp_path / "u.zip", [("general/PLACEHOLDR.json", "[]")])
    new = "café_HOLD".encode()
    assert len(new) == len(b"PLACEHOLDR")
    z.write_bytes(z.read_bytes().replace(b"PLACEHOLDR", new))
    out = extract_zip(z, dest_root=tmp_path / "work")
    assert (out / "general" / "café_HOLD.json").is_file()


def test_corrupt_zip_is_a_clear_source_error(tmp_path: Path) -> None:
    good = small_slack_export(tmp_path / "exp", as_zip=True)
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SourceError):
        extract_zip(bad, dest_root=tmp_path / "work")


def test_each_extraction_has_its_own_folder_and_is_removed_when_done(tmp_path: Path) -> None:
    from ingest.sources.archive import remove_extraction

    z = small_slack_export(tmp_path / "exp", as_zip=True)
    a = extract_zip(z, dest_root=tmp_path / "work")
    b = extract_zip(z, dest_root=tmp_path / "work")
    assert a != b and sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted([a.name, b.name])
    remove_extraction(a)
    remove_extraction(b)
    assert list((tmp_path / "work").iterdir()) == []


def test_leftover_extractions_of_dead_processes_and_old_versions_are_cleaned(tmp_path: Path) -> None:
    from ingest.sources.archive import clean_work

    work = tmp_path / "work"
    mine = extract_zip(small_slack_export(tmp_path / "exp", as_zip=True), dest_root=work)
    dead = work / f"{'a' * 64}.999999999.0123abcd"  # a pid that cannot run
    legacy = work / ("b" * 64)  # an earlier version's shared extraction
    for folder in (dead, legacy):
        folder.mkdir(parents=True)
        (folder / "channels.json").write_text("secret")
    assert clean_work(work) == 2
    assert sorted(p.name for p in work.iterdir()) == [mine.name]  # a running process keeps its own


def test_folder_export_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "2026-01-02.json").write_text(json.dumps([msg("U1", "outside secret", 0)]))
    users = [SUser("U1", "alice", "a@x.example")]
    c = SConv("C1", "general", "public", ["U1"])
    add_messages(c, [msg("U1", "inside", 0)])
    exp = write_slack_export(tmp_path / "exp", users, [c])
    os.symlink(outside / "2026-01-02.json", exp / "general" / "2026-01-02.json")
    os.symlink(outside, exp / "linked-channel")
    items = list(slack.discover(exp, policy=Policy()))
    text = "\n".join(e.text for i in items for e in i.parse().elements)
    assert "inside" in text and "outside secret" not in text
    assert all("linked-channel" not in i.document_id for i in items)


def test_hostile_confluence_xml_zip(tmp_path: Path) -> None:
    from ingest.sources import confluence

    z = tmp_path / "space.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("entities.xml", "<hibernate-generic/>")
        zf.writestr("../../outside.txt", "x")
    assert confluence.detect(z)
    with pytest.raises(HostileArchive, match="path traversal"):
        list(confluence.discover(z, policy=Policy()))


def test_hostile_archive_in_a_pipeline_run_is_quarantined_and_the_run_goes_on(
    tmp_path: Path, sqlite_stores, embedder, sample_corpus, make_ingestor
) -> None:

    z = _zip(tmp_path / "t.zip", [("../evil.txt", "x")])
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([z, sample_corpus])
    refused = [q for q in summary.quarantine if q.path == str(z)]
    assert len(refused) == 1 and "t.zip" in refused[0].message and refused[0].reason
    assert summary.new >= 1  # the good input of the same run was ingested
    assert any(q["path"] == str(z) for q in sqlite_stores.catalog.runs.quarantined())


def test_a_missing_path_stops_the_run_before_anything_happens(
    tmp_path: Path, sqlite_stores, embedder, make_ingestor
) -> None:

    with pytest.raises(SourceError) as exc:
        make_ingestor(sqlite_stores, embedder).ingest_paths([tmp_path / "nope.zip"])
    assert "nope.zip" in str(exc.value) and exc.value.hint
