"""Deep scan (--deep): every frame decoded in the scan's own pass; integrity.pixel checks."""

from __future__ import annotations

import shutil
import warnings

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import RLELossless

from conftest import new_findings, tiny_slices
from ctmd_validate import cli, synth
from ctmd_validate.engine import run_validation, validate
from ctmd_validate.findings import CheckStatus
from ctmd_validate.scan import read_header

PIXEL_IDS = {"integrity.pixel.decode", "integrity.pixel.range"}


def test_deep_scan_of_a_clean_tree_decodes_every_frame_and_finds_nothing(clean_tiny):
    result = run_validation(clean_tiny, "subset", jobs=1, deep=True)
    report, files = result.report, result.scan.files
    assert result.scan.deep and report.facts.deep
    assert (files["pixel_status"] == "ok").all()
    assert files["stored_max"].notna().all()
    for check_id in PIXEL_IDS:
        result = report.result(check_id)
        assert result.status is CheckStatus.PASSED
        assert result.examined == len(files)
    assert report.to_json()["scan"]["deep"] is True


def test_without_deep_the_pixel_checks_are_skipped(clean_tiny_report):
    for check_id in PIXEL_IDS:
        assert clean_tiny_report.result(check_id).status is CheckStatus.SKIPPED


@pytest.mark.parametrize("name", [n for n, d in synth.DEFECTS.items() if d.deep])
def test_pixel_defects_are_invisible_to_the_header_pass(name, make_tree, clean_tiny_report):
    """The reason for --deep: header and framing intact, nothing else fires."""
    root = make_tree([name])
    report = validate(root, "subset", jobs=1)
    assert new_findings(report, clean_tiny_report) == []


def test_damaged_rle_stream_fails_to_decode(make_tree):
    root = make_tree()
    target = tiny_slices(root, "normal")[3]
    ds = pydicom.dcmread(target)
    ds.compress(RLELossless)
    ds.save_as(target)
    clean = validate(root, "subset", jobs=1, deep=True)
    assert not [f for f in clean.active if f.check_id in PIXEL_IDS]

    # half of the RLE frame, re-encapsulated: the framing is intact, the stream is not
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    ds.save_as(target)
    shallow = validate(root, "subset", jobs=1)
    assert not [f for f in shallow.active if f.path == target.relative_to(root).as_posix()]
    report = validate(root, "subset", jobs=1, deep=True)
    hits = [f for f in report.active if f.check_id == "integrity.pixel.decode"]
    assert [f.path for f in hits] == [target.relative_to(root).as_posix()]


def test_cli_deep_flag_reaches_the_scan(make_tree, capsys):
    root = make_tree(["pixel-short"])
    rc = cli.main(["check", str(root), "--profile", "subset", "--jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "integrity.pixel" not in out
    rc = cli.main(["check", str(root), "--profile", "subset", "--jobs", "1", "--deep"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "every frame decoded" in out
    assert "integrity.pixel.decode (1)" in out


def test_deep_scan_in_parallel_equals_one_process(make_tree):
    root = make_tree(["pixel-short", "pixel-out-of-range"])
    one = run_validation(root, "subset", jobs=1, deep=True)
    two = run_validation(root, "subset", jobs=2, deep=True)
    cols = ["path", "pixel_status", "pixel_error", "stored_min", "stored_max"]
    a = one.scan.files[cols].sort_values("path").reset_index(drop=True)
    b = two.scan.files[cols].sort_values("path").reset_index(drop=True)
    assert a.equals(b)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["covid", "cap", "normal"]),
    start=st.floats(0.3, 0.999),
    length=st.integers(1, 200),
    byte=st.integers(0, 255),
)
def test_damaged_pixel_bytes_never_crash_the_deep_read(
    clean_tiny, tmp_path, capsys, which, start, length, byte
):
    source = tiny_slices(clean_tiny, which)[1]
    data = bytearray(source.read_bytes())
    at = int(len(data) * start)
    data[at : at + length] = bytes([byte]) * len(data[at : at + length])
    path = tmp_path / "x.dcm"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row, _ = read_header(str(path), deep=True)
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().err == ""
    assert row["status"] in {"ok", "unreadable"}
    if row["status"] == "ok":
        assert row["pixel_status"] in {"ok", "failed"}


# --------------------------------------------------------------------------- the real sample


@pytest.mark.real_sample
def test_real_sample_decodes_and_a_flipped_jpeg_stream_is_found(sample_root, tmp_path):
    """64 flipped bytes inside a real JPEG Lossless stream: the header pass sees nothing."""
    case_dir = next(
        p for p in sorted(sample_root.rglob("*")) if p.is_dir() and any(p.glob("*.dcm"))
    )
    dest = tmp_path / "copy" / case_dir.parent.name / case_dir.name
    shutil.copytree(case_dir, dest)
    root = tmp_path / "copy"
    clean_run = run_validation(root, "subset", jobs=2, deep=True)
    clean = clean_run.report
    assert (clean_run.scan.readable["pixel_status"] == "ok").all()
    assert not [f for f in clean.active if f.check_id in PIXEL_IDS]

    target = sorted(dest.glob("*.dcm"))[len(list(dest.glob("*.dcm"))) // 2]
    data = bytearray(target.read_bytes())
    at = data.index(b"\xff\xd8\xff", data.index(b"\xe0\x7f\x10\x00"))  # the JPEG stream
    for i in range(at + 2, at + 66):  # 64 bytes of its marker segments
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    rel = target.relative_to(root).as_posix()
    shallow = validate(root, "subset", jobs=2)
    assert not [f for f in shallow.active if f.path == rel]
    deep = validate(root, "subset", jobs=2, deep=True)
    hits = [f for f in deep.active if f.check_id in PIXEL_IDS]
    assert [f.path for f in hits] == [rel]
