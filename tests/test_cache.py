"""The run cache: an unchanged tree is not scanned again; any change is seen."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import snapshot, tiny_slices
from ctmd_validate import cli
from ctmd_validate.cache import RunCache
from ctmd_validate.engine import validate
from ctmd_validate.findings import Severity


def run(capsys, root: Path, report: Path, *extra: object) -> tuple[int, str, dict]:
    rc = cli.main(
        ["check", str(root), "--profile", "subset", "--jobs", "1", "--report", str(report)]
        + [str(e) for e in extra]
    )
    out = capsys.readouterr().out
    return rc, out, json.loads(report.read_text(encoding="utf-8"))


def _comparable(data: dict) -> dict:
    data = dict(data)
    for key in ("generated", "scan"):
        data.pop(key)
    return data


def test_unchanged_rerun_comes_from_the_cache_with_the_same_report(make_tree, tmp_path, capsys):
    root = make_tree(["stray-file", "type1-missing"])
    rc1, _out1, first = run(capsys, root, tmp_path / "a.json")
    assert first["scan"]["cached"] is False
    rc2, out2, second = run(capsys, root, tmp_path / "b.json")
    assert second["scan"]["cached"] is True
    assert "unchanged since the last run" in out2
    assert rc1 == rc2 == 1
    assert _comparable(first) == _comparable(second)


def test_a_file_rewritten_under_a_stale_entry_is_read_again(make_tree, tmp_path, capsys):
    """Same size, mtime set back: ctime still moves, so the entry is stale."""
    root = make_tree()
    _rc, _out, first = run(capsys, root, tmp_path / "a.json")
    assert first["valid"]
    target = tiny_slices(root, "cap")[3]
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[128:132] = b"DICX"  # no longer DICOM, same size
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    rc, _out, second = run(capsys, root, tmp_path / "b.json")
    assert second["scan"]["cached"] is False
    assert rc == 1
    rel = target.relative_to(root).as_posix()
    assert any(f["id"] == "dicom.unreadable" and f["path"] == rel for f in second["findings"])


@pytest.mark.parametrize("change", ["delete", "add", "rename"])
def test_any_change_to_the_tree_is_a_miss(make_tree, tmp_path, capsys, change):
    root = make_tree()
    run(capsys, root, tmp_path / "a.json")
    target = tiny_slices(root, "normal")[2]
    if change == "delete":
        target.unlink()
    elif change == "add":
        (target.parent / "notes.txt").write_text("x", encoding="utf-8")
    else:
        target.rename(target.with_name("renamed.dcm"))
    _rc, _out, second = run(capsys, root, tmp_path / "b.json")
    assert second["scan"]["cached"] is False


def test_no_cache_scans_again(make_tree, tmp_path, capsys):
    root = make_tree()
    run(capsys, root, tmp_path / "a.json")
    _rc, _out, data = run(capsys, root, tmp_path / "b.json", "--no-cache")
    assert data["scan"]["cached"] is False


def test_deep_and_profile_are_part_of_the_key(make_tree, tmp_path, capsys):
    root = make_tree()
    run(capsys, root, tmp_path / "a.json")
    _rc, _out, deep = run(capsys, root, tmp_path / "b.json", "--deep")
    assert deep["scan"]["cached"] is False and deep["scan"]["deep"] is True
    rc = cli.main(["check", str(root), "--jobs", "1", "--report", str(tmp_path / "c.json")])
    capsys.readouterr()
    release = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert rc == 1 and release["scan"]["cached"] is False


def test_integrity_mode_reads_a_full_runs_entry(make_tree, tmp_path, capsys):
    root = make_tree(["type1-missing"])
    run(capsys, root, tmp_path / "a.json")
    rc, _out, data = run(capsys, root, tmp_path / "b.json", "--mode", "integrity")
    assert data["scan"]["cached"] is True
    assert rc == 0
    assert not any(c["id"].startswith("dicom.required") for c in data["checks"])


def test_a_cache_folder_inside_the_dataset_is_never_written(make_tree, tmp_path, monkeypatch):
    root = make_tree()
    before = snapshot(root)
    cache = RunCache(root / "cache")
    assert not cache.usable_for(str(root), None)
    validate(root, "subset", jobs=1, cache=cache)
    validate(root, "subset", jobs=1, cache=cache)
    assert snapshot(root) == before


def test_a_cache_open_to_others_is_not_read(make_tree, tmp_path):
    root = make_tree()
    folder = tmp_path / "shared-cache"
    cache = RunCache(folder)
    validate(root, "subset", jobs=1, cache=cache)
    assert validate(root, "subset", jobs=1, cache=cache).facts.cached
    folder.chmod(0o777)
    assert not validate(root, "subset", jobs=1, cache=cache).facts.cached
    folder.chmod(0o700)
    entry = next(folder.glob("*.pickle"))
    entry.chmod(0o644)
    assert not validate(root, "subset", jobs=1, cache=cache).facts.cached


def test_a_damaged_entry_is_a_miss(make_tree, tmp_path):
    root = make_tree()
    cache = RunCache(tmp_path / "c")
    first = validate(root, "subset", jobs=1, cache=cache)
    for entry in (tmp_path / "c").glob("*.pickle"):
        data = entry.read_bytes()
        entry.write_bytes(data[: len(data) // 2])
    again = validate(root, "subset", jobs=1, cache=cache)
    assert not again.facts.cached
    assert again.to_json()["findings"] == first.to_json()["findings"]
    assert validate(root, "subset", jobs=1, cache=cache).facts.cached  # rewritten


def test_show_values_never_uses_or_fills_the_cache(make_tree, tmp_path):
    root = make_tree()
    cache = RunCache(tmp_path / "c")
    validate(root, "subset", jobs=1, cache=cache, show_values=True)
    assert not (tmp_path / "c").exists()


def test_the_cache_is_private(make_tree, tmp_path):
    root = make_tree()
    validate(root, "subset", jobs=1, cache=RunCache(tmp_path / "c"))
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    for entry in (tmp_path / "c").iterdir():
        assert entry.stat().st_mode & 0o777 == 0o600


def test_a_change_behind_a_link_in_the_labels_folder_is_a_miss(make_tree, tmp_path):
    """--labels DIR whose files are links into a sub-folder: the sub-folder is keyed too."""
    root = make_tree()
    labels = tmp_path / "labels"
    (labels / "real").mkdir(parents=True)
    for name in (
        "Index.csv",
        "Slice-level-labels.npy",
        "Lobe-level-labels.npy",
        "Slice-level-labels-updated-1.npy",
        "Lobe-level-labels-updated-1.npy",
    ):
        (root / name).rename(labels / "real" / name)
        (labels / name).symlink_to(Path("real") / name)
    cache = RunCache(tmp_path / "c")
    first = validate(root, "subset", jobs=1, labels_dir=labels, cache=cache)
    assert validate(root, "subset", jobs=1, labels_dir=labels, cache=cache).facts.cached
    target = labels / "real" / "Slice-level-labels.npy"
    target.write_bytes(target.read_bytes()[:-8])
    again = validate(root, "subset", jobs=1, labels_dir=labels, cache=cache)
    assert not again.facts.cached
    assert again.count(Severity.ERROR) > first.count(Severity.ERROR)
