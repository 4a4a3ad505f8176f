"""The zip as downloaded: read member by member, never extracted; unsafe members refused."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import snapshot
from ctmd_validate import cli
from ctmd_validate.engine import run_validation, validate
from ctmd_validate.paths import display


def zip_tree(tree: Path, out: Path, *, top: str | None = "COVID-CT-MD", stored=False) -> Path:
    """Zip ``tree`` (under the folder ``top`` inside the archive, as the release does)."""
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as zf:
        for path in sorted(tree.rglob("*")):
            rel = path.relative_to(tree).as_posix()
            name = f"{top}/{rel}" if top else rel
            if path.is_dir():
                zf.writestr(name + "/", b"")
            else:
                zf.write(path, name)
    return out


def keys(report, prefix: str = "") -> set[tuple]:
    out = set()
    for f in report.active:
        path = f.path[len(prefix) :] if f.path and f.path.startswith(prefix) else f.path
        out.add((f.check_id, f.severity.value, f.case, path))
    return out


@pytest.mark.parametrize("top", ["COVID-CT-MD", None])
def test_archive_gives_the_folders_findings(make_tree, tmp_path, top):
    tree = make_tree(["missing-slice", "stray-file", "type1-missing"])
    archive = zip_tree(tree, tmp_path / "COVID-CT-MD.zip", top=top)
    before = snapshot(tmp_path)
    from_zip = validate(archive, "subset", jobs=2)
    assert snapshot(tmp_path) == before  # nothing extracted, nothing written
    from_dir = validate(tree, "subset", jobs=1)
    assert keys(from_zip, f"{top}/" if top else "") == keys(from_dir)
    assert from_zip.facts.files == from_dir.facts.files
    labels = from_zip.to_json()["stats"]["labels"]["versions"]["original"]
    assert labels["reproduces_published"] is True
    assert run_validation(archive, "subset", jobs=1).scan.archive is not None


def _add_member(archive: Path, name: str, data: bytes = b"x", link: bool = False) -> None:
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo(name)
        if link:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)


@pytest.mark.parametrize(
    ("name", "link", "why"),
    [
        ("../evil.dcm", False, "zip slip"),
        ("COVID-CT-MD/CAP subjects/../../evil.dcm", False, "zip slip"),
        ("/etc/cron.d/evil", False, "absolute path"),
        ("C:/evil.dcm", False, "absolute path"),
        ("COVID-CT-MD\\evil.dcm", False, "backslash"),
        ("COVID-CT-MD/Normal subjects/passwd.dcm", True, "symbolic link"),
    ],
)
def test_unsafe_members_are_refused_and_never_read(make_tree, tmp_path, name, link, why):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    _add_member(archive, name, b"/etc/passwd" if link else b"DICM" * 40, link=link)
    run = run_validation(archive, "subset", jobs=1)
    report = run.report
    hits = [f for f in report.active if f.check_id == "archive.unsafe_member"]
    assert [f.path for f in hits] == [display(name)]  # shown escaped, one to one
    assert why in hits[0].message
    assert name not in set(run.scan.files["path"])
    assert not report.valid


def test_a_duplicate_member_is_refused(make_tree, tmp_path):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    with zipfile.ZipFile(archive) as zf:
        first = next(n for n in zf.namelist() if n.endswith(".dcm"))
    with pytest.warns(UserWarning, match="Duplicate name"):
        _add_member(archive, first, b"other")
    report = validate(archive, "subset", jobs=1)
    hits = [f for f in report.active if f.check_id == "archive.unsafe_member"]
    assert [f.path for f in hits] == [first] and "listed twice" in hits[0].message


def test_a_file_and_a_folder_of_one_name_are_refused(make_tree, tmp_path):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    _add_member(archive, "COVID-CT-MD/CAP subjects/cap046/IM0001.dcm/inner.dcm", b"x")
    report = validate(archive, "subset", jobs=1)
    hits = [f for f in report.active if f.check_id == "archive.unsafe_member"]
    assert [f.path for f in hits] == ["COVID-CT-MD/CAP subjects/cap046/IM0001.dcm/inner.dcm"]
    assert "same name" in hits[0].message


def test_a_truncated_archive_is_reported_and_never_passes(make_tree, tmp_path, capsys):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    out = tmp_path / "r.json"
    rc = cli.main(["check", str(archive), "--profile", "subset", "--report", str(out)])
    capsys.readouterr()
    assert rc == 1
    ids = {f["id"] for f in json.loads(out.read_text(encoding="utf-8"))["findings"]}
    assert {"archive.unreadable", "structure.no_dataset"} <= ids


def test_a_damaged_member_fails_its_crc(make_tree, tmp_path):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip", stored=True)
    with zipfile.ZipFile(archive) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("IM0005.dcm"))
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename.encode()) + 600] ^= 0xFF
    archive.write_bytes(bytes(data))
    report = validate(archive, "subset", jobs=1)
    hits = [f for f in report.active if f.check_id == "dicom.unreadable"]
    assert [f.path for f in hits] == [info.filename]
    assert "CRC" in hits[0].message


def test_archive_md5(make_tree, tmp_path, capsys):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    base = ["check", str(archive), "--profile", "subset"]
    assert cli.main([*base, "--archive-md5", digest]) == 0
    capsys.readouterr()
    assert cli.main([*base, "--archive-md5", "0" * 32]) == 1
    assert "archive.md5 (1)" in capsys.readouterr().out
    # the published figures: a synthetic archive matches neither size nor MD5
    assert cli.main([*base, "--archive-md5"]) == 1
    out = capsys.readouterr().out
    assert "archive.md5 (2)" in out and "11,273,767,727" in out
    assert cli.main([*base, "--archive-md5", "xyz"]) == 2
    assert cli.main(["check", str(make_tree()), "--archive-md5", digest]) == 2


def test_deep_scan_reads_pixels_from_the_archive(make_tree, tmp_path):
    archive = zip_tree(make_tree(["pixel-short"]), tmp_path / "COVID-CT-MD.zip")
    report = validate(archive, "subset", jobs=2, deep=True)
    assert [f.check_id for f in report.active if f.check_id.startswith("integrity.")] == [
        "integrity.pixel.decode"
    ]


def test_archive_options_that_need_a_folder_are_refused(make_tree, tmp_path, capsys):
    tree = make_tree()
    archive = zip_tree(tree, tmp_path / "COVID-CT-MD.zip")
    manifest = tmp_path / "m.txt"
    assert cli.main(["manifest", "build", str(tree), "-o", str(manifest)]) == 0
    assert cli.main(["check", str(archive), "--manifest", str(manifest)]) == 2
    assert cli.main(["check", str(archive), "--labels", str(tree)]) == 2
    assert cli.main(["check", str(archive), "--report", str(archive)]) == 2
    capsys.readouterr()


def test_a_file_that_is_no_archive_is_a_usage_error(tmp_path, capsys):
    other = tmp_path / "notes.txt"
    other.write_text("hello", encoding="utf-8")
    assert cli.main(["check", str(other)]) == 2
    assert "folder or zip archive" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6))
def test_any_member_names_never_crash_the_scan(tmp_path_factory, names):
    folder = tmp_path_factory.mktemp("names")
    archive = folder / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(names):
            info = zipfile.ZipInfo(name)
            zf.writestr(info, b"%d" % i)
    report = validate(archive, "subset", jobs=1)
    data = report.to_json()  # validated against the schema when dumped
    report.dumps()
    assert data["valid"] is False  # never a dataset
    for f in report.active:
        assert f.path is None or not os.path.isabs(f.path) or f.check_id == "archive.unsafe_member"


@pytest.mark.parametrize(
    ("name", "method", "why"),
    [
        ("COVID-CT-MD/bomb.dcm", zipfile.ZIP_BZIP2, "cannot be bounded"),
        ("COVID-CT-MD/lzma.dcm", zipfile.ZIP_LZMA, "cannot be bounded"),
        ("COVID-CT-MD//CAP subjects/x.dcm", zipfile.ZIP_DEFLATED, "empty or '.' component"),
        ("./COVID-CT-MD/x.dcm", zipfile.ZIP_DEFLATED, "empty or '.' component"),
        ("COVID-CT-MD/a\nVALID: 0 errors.dcm", zipfile.ZIP_DEFLATED, "not read"),
    ],
)
def test_members_that_cannot_be_read_safely_are_refused(make_tree, tmp_path, name, method, why):
    archive = zip_tree(make_tree(), tmp_path / "COVID-CT-MD.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"\0" * 10_000, compress_type=method)
    report = validate(archive, "subset", jobs=1)
    hits = [f for f in report.active if f.check_id == "archive.unsafe_member"]
    if "\n" in name:  # a plain name with a line break: read, shown escaped (no fake lines)
        assert not hits
        assert all("\n" not in line for line in report.summary().splitlines())
        assert "a\\x0aVALID" in report.summary(per_group=None)
        return
    assert [f.path for f in hits] == [display(name)]
    assert why in hits[0].message
