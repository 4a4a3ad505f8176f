"""The consumer's fixity workflow on the command line: manifest build / verify, --manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli, snapshot, tiny_slices
from ctmd_validate.report import validate_report


@pytest.fixture
def shipped(make_tree, tmp_path, capsys) -> tuple[Path, Path]:
    """A clean copy and the manifest the curators built of it (outside the copy)."""
    root = make_tree()
    manifest = tmp_path / "release" / "manifest-sha256.txt"
    rc, out, _ = run_cli(capsys, "manifest", "build", root, "-o", manifest)
    assert rc == 0, out
    assert "343 files" in out or "files," in out
    return root, manifest


def test_build_writes_a_manifest_sha256sum_accepts(shipped):
    root, manifest = shipped
    assert manifest.is_file() and manifest.with_name("manifest-sha256.sizes.txt").is_file()
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum is not installed")
    done = subprocess.run(
        ["sha256sum", "-c", "--quiet", str(manifest)], cwd=root, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_never_writes_into_the_dataset(make_tree, capsys):
    root = make_tree()
    before = snapshot(root)
    rc, _out, err = run_cli(capsys, "manifest", "build", root, "-o", root / "manifest-sha256.txt")
    assert rc == 2
    assert "inside the dataset root" in err
    assert snapshot(root) == before


def test_verify_clean_copy_is_valid(shipped, capsys):
    root, manifest = shipped
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest)
    assert rc == 0
    assert "VALID: 0 errors" in out
    assert "fixity mode" in out
    assert "checks: 5 passed" in out


def test_verify_names_every_bad_file(shipped, tmp_path, capsys):
    root, manifest = shipped
    flipped = tiny_slices(root, "cap")[3]
    data = bytearray(flipped.read_bytes())
    data[-10] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = tiny_slices(root, "covid")[5]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    deleted = [tiny_slices(root, "normal")[i] for i in (1, 2, 3)]
    for f in deleted:
        f.unlink()
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    report = tmp_path / "verify.json"
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest, "--report", report)
    assert rc == 1
    data = json.loads(report.read_text(encoding="utf-8"))
    validate_report(data)
    got = {(f["id"], f["path"]) for f in data["findings"] if f["id"] != "integrity.missing_file"}
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert got == {
        ("integrity.checksum", rel(flipped)),
        ("integrity.size", rel(truncated)),
        ("integrity.extra_file", "notes.txt"),
    }
    # a missing file is named by its folder and its manifest line, never by its own name
    listed = manifest.read_text(encoding="utf-8").splitlines()
    lines = {i for i, line in enumerate(listed, 1) for f in deleted if line.endswith(rel(f))}
    missing = [f for f in data["findings"] if f["id"] == "integrity.missing_file"]
    assert {f["path"] for f in missing} == {rel(deleted[0].parent)}
    assert {int(f["message"].split("(line ")[1].split(")")[0]) for f in missing} == lines
    for f in deleted:
        assert rel(f) not in out and rel(f) not in json.dumps(data)
    for _id, path in got:
        assert path in out
    # asked for explicitly, the names are shown
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest, "--show-values")
    assert all(rel(f) in out for f in deleted)


def test_verify_fast_sees_sizes_not_contents(shipped, capsys):
    root, manifest = shipped
    flipped = tiny_slices(root, "cap")[3]
    data = bytearray(flipped.read_bytes())
    data[-10] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert run_cli(capsys, "manifest", "verify", root, manifest, "--fast")[0] == 0
    truncated = tiny_slices(root, "covid")[5]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest, "--fast")
    assert rc == 1
    assert "integrity.size (1)" in out
    assert "integrity.checksum" not in out


def test_check_with_manifest_runs_fixity_beside_every_check(shipped, tmp_path, capsys):
    root, manifest = shipped
    flipped = tiny_slices(root, "cap")[3]
    data = bytearray(flipped.read_bytes())
    data[-10] ^= 0xFF  # inside native pixel data: no other check can see it
    flipped.write_bytes(bytes(data))
    report = tmp_path / "r.json"
    rc, _out, _ = run_cli(
        capsys, "check", root, "--profile", "subset", "--report", report, "--no-cache"
    )
    assert rc == 0
    rc, out, _ = run_cli(
        capsys, "check", root, "--profile", "subset", "--manifest", manifest, "--report", report
    )
    assert rc == 1
    assert "integrity.checksum (1)" in out
    data = json.loads(report.read_text(encoding="utf-8"))
    assert len({c["id"] for c in data["checks"]}) > 60


def test_a_cached_rerun_still_compares_the_manifest(shipped, capsys):
    root, manifest = shipped
    run_cli(capsys, "check", root, "--profile", "subset")  # fills the cache
    # same tree (the manifest lies outside it): the cache is used, the hashes are not
    rc, out, _ = run_cli(capsys, "check", root, "--profile", "subset", "--manifest", manifest)
    assert rc == 0 and "unchanged since the last run" in out
    other = manifest.with_name("other-sha256.txt")
    lines = manifest.read_text(encoding="utf-8").splitlines()
    other.write_text("\n".join(["0" * 64 + lines[0][64:], *lines[1:]]) + "\n", encoding="utf-8")
    rc, out, _ = run_cli(capsys, "check", root, "--profile", "subset", "--manifest", other)
    assert rc == 1 and "unchanged since the last run" in out
    assert "integrity.checksum (1)" in out


@pytest.mark.parametrize(
    "content", [b"", b"not a manifest line\n", b"0" * 64 + b"  ../outside.dcm\n"]
)
def test_a_malformed_manifest_is_a_finding(make_tree, tmp_path, capsys, content):
    root = make_tree()
    manifest = tmp_path / "bad.txt"
    manifest.write_bytes(content)
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest, "--max-lines", "0")
    assert rc == 1
    assert "lists no file" in out  # nothing usable listed
    if content:
        assert "line 1:" in out  # the malformed line named by its number, never quoted
    assert "integrity.extra_file" in out  # nothing listed: every file is extra


def test_fast_without_sizes_is_refused_and_unsized_entries_are_problems(shipped, capsys):
    root, manifest = shipped
    sizes = manifest.with_name("manifest-sha256.sizes.txt")
    lines = sizes.read_text(encoding="utf-8").splitlines()
    sizes.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")  # one size dropped
    rc, out, _ = run_cli(capsys, "manifest", "verify", root, manifest, "--fast")
    assert rc == 1
    assert "1 listed files have no size" in out
    sizes.unlink()
    rc, out, err = run_cli(capsys, "manifest", "verify", root, manifest, "--fast")
    assert rc == 2 and "sizes" in err and out == ""
    assert run_cli(capsys, "manifest", "verify", root, manifest)[0] == 0  # hashes still do


def test_an_unreadable_manifest_is_a_usage_error(make_tree, tmp_path, capsys):
    root = make_tree()
    rc, out, err = run_cli(capsys, "manifest", "verify", root, tmp_path / "absent.txt")
    assert rc == 2 and out == ""
    assert "manifest" in err


def test_html_report_is_written_outside_the_dataset(make_tree, tmp_path, capsys):
    root = make_tree(["missing-slice"])
    page = tmp_path / "out" / "report.html"
    rc, out, _ = run_cli(capsys, "check", root, "--profile", "subset", "--html", page)
    assert rc == 1
    assert f"html: {page}" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "counts.case_slices" in text
    before = snapshot(root)
    rc, _out, err = run_cli(capsys, "check", root, "--profile", "subset", "--html", root / "r.html")
    assert rc == 2 and "inside the dataset" in err
    assert snapshot(root) == before
