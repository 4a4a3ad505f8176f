"""Fixity layer: hashing, BagIt manifests and their comparison, tested by damaging trees."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import bagit  # the test extra: bagit-python, the reference BagIt implementation
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import recorded
from ctmd_validate import fixity
from ctmd_validate.errors import CtmdError
from ctmd_validate.fixity import (
    CHECKSUM,
    EXTRA,
    MISSING,
    SIZE,
    Discrepancy,
    TreeFile,
    compare,
    hash_files,
    list_files,
    read_manifest,
    sizes_path,
    write_manifest,
)

FILES = {
    "Index.csv": 300,
    "empty.txt": 0,
    "COVID-19 subjects/P 001/IM0001.dcm": 70_000,
    "COVID-19 subjects/P 001/IM0002.dcm": 1_500_000,
    "Normal subjects/normal 001/IM0001.dcm": 5_000,
    "Normal subjects/normal 001/deep er/IM0003.dcm": 2_048,
}


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "dataset root"
    for i, (rel, size) in enumerate(FILES.items()):
        _write(
            root, rel, os.urandom(size) if i % 2 else (bytes(range(256)) * (size // 256 + 1))[:size]
        )
    return root


def build(root: Path, out: Path, **kwargs: object) -> Path:
    files, _ = list_files(root)
    written = write_manifest(hash_files(root, files, **kwargs), out, root=root)
    assert written == (out, sizes_path(out))
    return out


def verify(root: Path, manifest: Path, *, fast: bool = False, jobs: int = 2) -> list[Discrepancy]:
    files, _ = list_files(root, exclude=[manifest, sizes_path(manifest)])
    return compare(
        hash_files(root, files, jobs=jobs, fast=fast), read_manifest(manifest), fast=fast
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def manifest(tree: Path, tmp_path: Path) -> Path:
    return build(tree, tmp_path / "out" / "manifest-sha256.txt")


# --------------------------------------------------------------------------- damage


def test_clean_tree_verifies_clean(tree: Path, manifest: Path) -> None:
    assert verify(tree, manifest) == []
    assert verify(tree, manifest, fast=True) == []
    text = manifest.read_bytes()
    lines = text.decode().split("\n")
    assert lines[-1] == "" and b"\r" not in text
    paths = [line.split("  ", 1)[1] for line in lines[:-1]]
    assert paths == sorted(FILES)
    for line in lines[:-1]:
        digest, rel = line.split("  ", 1)
        assert digest == sha((tree / rel).read_bytes())
    sizes = sizes_path(manifest).read_text().splitlines()
    assert sizes == [f"{FILES[p]}  {p}" for p in sorted(FILES)]
    parsed = read_manifest(manifest)
    assert parsed.sizes_found and parsed.problems == []
    assert {p: e.size for p, e in parsed.entries.items()} == FILES


def test_flipped_byte_is_exactly_one_checksum(tree: Path, manifest: Path) -> None:
    rel = "COVID-19 subjects/P 001/IM0002.dcm"
    path = tree / rel
    data = bytearray(path.read_bytes())
    before = sha(bytes(data))
    data[1_234_567] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify(tree, manifest) == [Discrepancy(CHECKSUM, rel, before, sha(bytes(data)))]
    assert verify(tree, manifest, fast=True) == []  # same size: fast mode cannot see it


def test_deleted_file_is_missing(tree: Path, manifest: Path) -> None:
    rel = "Normal subjects/normal 001/deep er/IM0003.dcm"
    before = sha((tree / rel).read_bytes())
    (tree / rel).unlink()
    assert verify(tree, manifest) == [Discrepancy(MISSING, rel, before, None)]
    assert verify(tree, manifest, fast=True) == [Discrepancy(MISSING, rel, before, None)]


def test_added_file_is_extra(tree: Path, manifest: Path) -> None:
    _write(tree, "Normal subjects/new one.dcm", b"new")
    found = verify(tree, manifest)
    assert found == [Discrepancy(EXTRA, "Normal subjects/new one.dcm", None, sha(b"new"))]
    assert [d.kind for d in verify(tree, manifest, fast=True)] == [EXTRA]


@pytest.mark.parametrize("fast", [False, True])
def test_truncated_file_is_size_not_checksum(tree: Path, manifest: Path, fast: bool) -> None:
    rel = "COVID-19 subjects/P 001/IM0001.dcm"
    path = tree / rel
    st_before = path.stat()
    with open(path, "r+b") as fh:
        fh.truncate(69_999)
    os.utime(path, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))  # mtime is no alibi
    assert verify(tree, manifest, fast=fast) == [Discrepancy(SIZE, rel, 70_000, 69_999)]


def test_every_damaged_file_is_named(tree: Path, manifest: Path) -> None:
    (tree / "Index.csv").unlink()
    (tree / "empty.txt").unlink()
    _write(tree, "stray file.bin", b"x")
    flipped = tree / "Normal subjects/normal 001/IM0001.dcm"
    data = bytearray(flipped.read_bytes())
    data[0] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with open(tree / "COVID-19 subjects/P 001/IM0002.dcm", "ab") as fh:
        fh.write(b"grown")
    found = [(d.kind, d.path) for d in verify(tree, manifest)]
    assert found == [
        (SIZE, "COVID-19 subjects/P 001/IM0002.dcm"),
        (MISSING, "Index.csv"),
        (CHECKSUM, "Normal subjects/normal 001/IM0001.dcm"),
        (MISSING, "empty.txt"),
        (EXTRA, "stray file.bin"),
    ]


def test_file_swapped_for_link_after_listing_is_not_read(tree: Path, tmp_path: Path) -> None:
    """Between the listing and the hashing a file (and a folder) become links: not followed."""
    out = build(tree, tmp_path / "m.txt")
    secret = tmp_path / "outside" / "IM0001.dcm"
    _write(secret.parent, secret.name, b"secret")
    files, _ = list_files(tree)
    rel = "Normal subjects/normal 001/IM0001.dcm"
    (tree / rel).unlink()
    (tree / rel).symlink_to(secret)
    folder = tree / "COVID-19 subjects/P 001"
    shutil.rmtree(folder)
    folder.symlink_to(secret.parent, target_is_directory=True)
    _write(secret.parent, "IM0002.dcm", b"secret")
    with recorded() as events:
        hashed = hash_files(tree, files, jobs=2)
    assert not [e for e in events if str(tmp_path / "outside") in e[1]]
    bad = {f.path: f for f in hashed if f.error}
    assert sorted(bad) == [
        "COVID-19 subjects/P 001/IM0001.dcm",
        "COVID-19 subjects/P 001/IM0002.dcm",
        rel,
    ]
    assert {p: f.error for p, f in bad.items()} == {
        "COVID-19 subjects/P 001/IM0001.dcm": fixity.LINKED_FOLDER,
        "COVID-19 subjects/P 001/IM0002.dcm": fixity.LINKED_FOLDER,
        rel: "a symbolic link now; not followed",
    }
    assert all(f.sha256 is None for f in bad.values())
    assert all("IM000" not in (f.error or "") for f in bad.values())
    found = compare(hashed, read_manifest(out))
    assert [(d.kind, d.path, d.actual) for d in found] == [(CHECKSUM, p, None) for p in sorted(bad)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_an_error_not_an_exception(tree: Path, manifest: Path) -> None:
    path = tree / "Index.csv"
    path.chmod(0)
    try:
        hashed = {f.path: f for f in hash_files(tree)}
    finally:
        path.chmod(0o644)
    assert hashed["Index.csv"].error == "PermissionError: Permission denied"
    assert hashed["Index.csv"].sha256 is None


# --------------------------------------------------------------------------- names


ODD_NAMES = [
    "new\nline.dcm",
    "carriage\rreturn",
    "crlf\r\nboth",
    "100%.txt",
    "p%25q",
    "literal %0A and %0d",
    "back\\slash",
    "*starred",
    "trailing space ",
    "tab\tinside",
    "ümlaut ✓ 漢字",
    "# not a comment",
]


def test_odd_names_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for i, name in enumerate(ODD_NAMES):
        _write(root, f"dir {i % 3}/{name}", name.encode() * (i + 1))
    undecodable = os.fsencode(root) + b"/latin-1 \xe9\xff.dcm"
    with open(undecodable, "wb") as fh:
        fh.write(b"bytes")
    out = build(root, tmp_path / "manifest.txt")
    assert b"\xe9\xff" in out.read_bytes()  # raw bytes, as sha256sum writes them
    assert b"new%0Aline" in out.read_bytes() and b"p%2525q" in out.read_bytes()
    parsed = read_manifest(out)
    assert parsed.problems == []
    assert "latin-1 \udce9\udcff.dcm" in parsed.entries
    assert len(parsed.entries) == len(ODD_NAMES) + 1
    assert verify(root, out) == []
    (root / "dir 0" / "new\nline.dcm").write_bytes(b"NEW\nLINE.DCM")
    assert [(d.kind, d.path) for d in verify(root, out)] == [(CHECKSUM, "dir 0/new\nline.dcm")]


def test_leading_blank_in_a_name_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _write(root, " leading.dcm", b"x")
    with pytest.raises(CtmdError, match="space or tab"):
        build(root, tmp_path / "m.txt")
    assert not (tmp_path / "m.txt").exists()


def test_percent_decoding_is_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    digest = "a" * 64
    path.write_bytes(f"{digest}  a%250Ab\n{digest}  c%0a%0D\n{digest}  d%41\n".encode())
    assert sorted(read_manifest(path).entries) == ["a%0Ab", "c\n\r", "d%41"]


# --------------------------------------------------------------------------- interoperability


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="sha256sum not installed")
def test_sha256sum_accepts_our_manifest(tree: Path, manifest: Path) -> None:
    run = subprocess.run(
        ["sha256sum", "--check", "--strict", os.fspath(manifest)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": OK") == len(FILES)
    (tree / "Index.csv").write_bytes(b"changed")
    run = subprocess.run(
        ["sha256sum", "--check", "--quiet", os.fspath(manifest)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and "Index.csv: FAILED" in run.stdout


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="sha256sum not installed")
@pytest.mark.parametrize("mode", ["--text", "--binary"])
def test_sha256sum_output_is_read(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "root"
    names = ["plain.dcm", "sp ace/x.dcm", "back\\slash", "new\nline", "*star", "tab\there"]
    for name in names:
        _write(root, name, name.encode())
    listed = subprocess.run(
        ["sha256sum", mode, "--", *names], cwd=root, capture_output=True, check=True
    ).stdout
    path = tmp_path / "SHA256SUMS"
    path.write_bytes(listed)
    parsed = read_manifest(path)
    assert parsed.problems == [] and not parsed.sizes_found
    assert sorted(parsed.entries) == sorted(names)
    assert compare(hash_files(root), parsed) == []
    dotted = subprocess.run(
        ["sha256sum", "./plain.dcm"], cwd=root, capture_output=True, check=True
    ).stdout
    path.write_bytes(dotted)  # `find . -type f | xargs sha256sum` spells paths ./a
    assert list(read_manifest(path).entries) == ["plain.dcm"]


def test_bagit_interoperates(tmp_path: Path) -> None:
    bag_dir = tmp_path / "bag"
    names = ["a.dcm", "sub dir/b c.dcm", "new\nline.dcm"]  # bagit-python leaves '%' as it is
    for name in names:
        _write(bag_dir, name, os.urandom(1000))
    bag = bagit.make_bag(os.fspath(bag_dir), checksums=["sha256"])
    data = bag_dir / "data"
    prefixed = [dataclasses.replace(f, path="data/" + f.path) for f in hash_files(data)]
    assert compare(prefixed, read_manifest(bag_dir / "manifest-sha256.txt")) == []
    for tag in bag_dir.glob("tagmanifest-*.txt"):
        tag.unlink()
    write_manifest(prefixed, bag_dir / "manifest-sha256.txt", root=data)
    bagit.Bag(os.fspath(bag_dir)).validate()
    assert bag.payload_files()


# --------------------------------------------------------------------------- manifest input


def test_malformed_lines_are_problems(tmp_path: Path) -> None:
    good = "0123456789abcdef" * 4
    path = tmp_path / "m.txt"
    lines = [
        f"{good}  ok one.dcm",  # 1
        "",  # 2: blank, ignored
        f"{good[:-1]}  short hash",  # 3
        "not a manifest line with SECRET-VALUE",  # 4
        f"{good.upper()}\tupper tab.dcm",  # 5
        f"{good}  ok one.dcm",  # 6: duplicate
        f"{good}  ",  # 7: empty path
        f"{good}x  glued",  # 8
        f"{good}  a//b",  # 9
        f"{good} *binary.dcm",  # 10
        f"SHA256 (x) = {good}",  # 11
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    parsed = read_manifest(path)
    assert sorted(parsed.entries) == ["binary.dcm", "ok one.dcm", "upper tab.dcm"]
    assert parsed.entries["upper tab.dcm"].sha256 == good
    assert parsed.problems == [
        "line 3: not '<64 hex>  <path>'",
        "line 4: not '<64 hex>  <path>'",
        "line 6: duplicate path (first on line 1)",
        "line 7: empty path",
        "line 8: not '<64 hex>  <path>'",
        "line 9: path with an empty or '.' component",
        "line 11: not '<64 hex>  <path>'",
    ]
    assert not any("SECRET" in p or "glued" in p for p in parsed.problems)


def test_sizes_companion_problems(tmp_path: Path) -> None:
    good = "f" * 64
    path = tmp_path / "manifest.txt"
    path.write_text(f"{good}  a\n{good}  b\n")
    sizes_path(path).write_text("3  a\nx  b\n4  a\n5  elsewhere\n")
    parsed = read_manifest(path)
    assert parsed.sizes_found
    assert parsed.entries["a"].size == 3 and parsed.entries["b"].size is None
    assert parsed.problems == [
        "sizes line 2: not '<size>  <path>'",
        "sizes line 3: duplicate path (first on line 1)",
        "sizes line 4: path not in the manifest",
    ]


def test_unsafe_manifest_paths_are_problems_never_opened(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"do not read")
    digest = sha(b"do not read")
    path = tmp_path / "m.txt"
    path.write_text(
        f"{digest}  ../secret.bin\n{digest}  {secret}\n{digest}  Index.csv/../../secret.bin\n"
        f"{digest}  ./../secret.bin\n"
    )
    with recorded() as events:
        parsed = read_manifest(path)
        found = compare(hash_files(tree, jobs=2), parsed)
    assert parsed.entries == {}
    assert parsed.problems == [
        "line 1: path with '..'",
        "line 2: absolute path",
        "line 3: path with '..'",
        "line 4: path with '..'",
    ]
    assert not [e for e in events if "secret" in e[1]]
    assert {d.kind for d in found} == {EXTRA}  # the tree is all there, just not listed


def test_unreadable_manifests_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CtmdError, match="no such file"):
        read_manifest(tmp_path / "absent.txt")
    with pytest.raises(CtmdError, match="not a regular file"):
        read_manifest(tmp_path)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text(f"{'a' * 64}  x\n", encoding="utf-16")
    with pytest.raises(CtmdError, match="not text"):
        read_manifest(utf16)
    big = tmp_path / "big.txt"
    big.write_text(f"{'a' * 64}  x\n" * 100)
    monkeypatch.setattr(fixity, "MAX_MANIFEST_BYTES", 1000)
    with pytest.raises(CtmdError, match="larger than"):
        read_manifest(big)
    small = tmp_path / "small.txt"
    small.write_text(f"{'a' * 64}  x\n")
    sizes_path(small).write_text("1  x\n" * 300)
    with pytest.raises(CtmdError, match="sizes file"):
        read_manifest(small)


def test_utf8_bom_and_fifo_companion(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"a" * 64 + b"  x\n")
    assert list(read_manifest(path).entries) == ["x"]
    os.mkfifo(sizes_path(path))
    with pytest.raises(CtmdError, match="not a regular file"):  # and no blocking open
        read_manifest(path)


# --------------------------------------------------------------------------- the tree walk


def test_links_and_special_files_are_listed_not_followed(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, "secret.dcm", b"secret")
    (tree / "link to file").symlink_to(outside / "secret.dcm")
    (tree / "Normal subjects" / "link to folder").symlink_to(outside, target_is_directory=True)
    (tree / "link inside").symlink_to(tree / "Index.csv")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tree / "a fifo")
    with recorded() as events:
        files, skipped = list_files(tree)
        hashed = hash_files(tree, jobs=2)
    assert [f[0] for f in files] == sorted(FILES) == [f.path for f in hashed]
    assert all(f[1] == os.path.join(os.path.realpath(tree), f[0]) for f in files)
    assert skipped == [
        "Normal subjects/link to folder",
        "a fifo",
        "dangling",
        "link inside",
        "link to file",
    ]
    assert not [e for e in events if "outside" in e[1] or "nowhere" in e[1]]


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists folders whatever their mode")
def test_unlistable_folder_is_reported(tree: Path) -> None:
    folder = tree / "Normal subjects"
    folder.chmod(0)
    try:
        files, skipped = list_files(tree)
    finally:
        folder.chmod(0o755)
    assert skipped == ["Normal subjects/"]
    assert not [f for f in files if f[0].startswith("Normal")]


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CtmdError, match="not a folder"):
        list_files(tmp_path / "absent")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(CtmdError, match="not a folder"):
        hash_files(tmp_path / "file")


def test_root_given_through_a_link(tree: Path, tmp_path: Path, manifest: Path) -> None:
    link = tmp_path / "via link"
    link.symlink_to(tree, target_is_directory=True)
    assert verify(link, manifest) == []


def test_exclude_manifest_inside_root_and_folders(tree: Path, tmp_path: Path) -> None:
    files, _ = list_files(tree)
    out = tmp_path / "m.txt"
    write_manifest(hash_files(tree, files), out, root=tree)
    shutil.copy(out, tree / "m.txt")
    shutil.copy(sizes_path(out), tree / "m.sizes.txt")
    inside = tree / "m.txt"
    assert [d.kind for d in verify(tree, inside)] == []
    files, _ = list_files(tree)
    assert {"m.txt", "m.sizes.txt"} <= {f[0] for f in files}
    files, _ = list_files(tree, exclude=[tree / "Normal subjects", tmp_path / "elsewhere", tree])
    assert [f[0] for f in files] == [
        "COVID-19 subjects/P 001/IM0001.dcm",
        "COVID-19 subjects/P 001/IM0002.dcm",
        "Index.csv",
        "empty.txt",
        "m.sizes.txt",
        "m.txt",
    ]


def test_hash_files_with_given_files_and_bad_paths(tree: Path) -> None:
    given_files = [("Index.csv", "ignored", 300), ("../escape", "x", 1), ("/abs", "x", 1)]
    hashed = hash_files(tree, given_files)
    assert hashed[0].sha256 == sha((tree / "Index.csv").read_bytes())
    assert [f.error for f in hashed[1:]] == ["not a relative path inside the root"] * 2


# --------------------------------------------------------------------------- hashing


def test_jobs_give_identical_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    for i in range(40):
        _write(root, f"d{i % 4}/sub {i % 3}/f{i:02}.bin", os.urandom(i * 997))
    _write(root, "big.bin", os.urandom(3 * fixity.BUFFER_SIZE + 17))
    monkeypatch.setattr(fixity, "_CHUNK_FILES", 3)
    seen: list[tuple[int, int]] = []
    one = hash_files(root, jobs=1, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (41, 41) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    seen.clear()
    two = hash_files(root, jobs=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (41, 41) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert one == two == hash_files(root, jobs=5)
    assert [f.path for f in one] == sorted(f.path for f in one)
    big = next(f for f in one if f.path == "big.bin")
    assert big.sha256 == sha((root / "big.bin").read_bytes())
    assert big.size == 3 * fixity.BUFFER_SIZE + 17


def test_fast_mode_opens_nothing(tree: Path) -> None:
    files, _ = list_files(tree)
    with recorded() as events:
        fast = hash_files(tree, files, fast=True)
    assert [e for e in events if e[0] == "open"] == []
    assert [(f.path, f.size, f.sha256, f.error) for f in fast] == [
        (p, FILES[p], None, None) for p in sorted(FILES)
    ]


# --------------------------------------------------------------------------- writing


def test_write_refuses_inside_root(tree: Path, tmp_path: Path) -> None:
    hashed = hash_files(tree)
    link = tmp_path / "link to root"
    link.symlink_to(tree, target_is_directory=True)
    for out in [tree / "m.txt", tree / "Normal subjects" / "m.txt", link / "m.txt"]:
        with pytest.raises(CtmdError, match="inside the dataset root"):
            write_manifest(hashed, out, root=tree)
    write_manifest(hashed, tmp_path / "beside.txt", root=link)  # beside the root: allowed
    assert sorted(p.name for p in tree.iterdir()) == sorted(
        {"Index.csv", "empty.txt", "COVID-19 subjects", "Normal subjects"}
    )


def test_write_refuses_unhashed_files(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(CtmdError, match="not hashed"):
        write_manifest(hash_files(tree, fast=True), tmp_path / "m.txt")
    bad = [TreeFile("x", 1, None, "PermissionError: Permission denied")]
    with pytest.raises(CtmdError, match="Permission denied"):
        write_manifest(bad, tmp_path / "m.txt")
    twice = [TreeFile("x", 1, "a" * 64, None)] * 2
    with pytest.raises(CtmdError, match="listed twice"):
        write_manifest(twice, tmp_path / "m.txt")
    assert list(tmp_path.glob("m*")) == []


def test_write_is_atomic_and_keeps_mode(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "manifest"
    build(tree, out)
    assert sizes_path(out).name == "manifest.sizes.txt"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    out.chmod(0o640)
    (tree / "Index.csv").unlink()
    build(tree, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifest", "manifest.sizes.txt"]
    assert "Index.csv" not in out.read_text()


def test_sizes_path_naming() -> None:
    assert sizes_path("a/manifest-sha256.txt") == Path("a/manifest-sha256.sizes.txt")
    assert sizes_path("SHA256SUMS") == Path("SHA256SUMS.sizes.txt")


# --------------------------------------------------------------------------- property

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..", "nested dir") and s[0] not in " \t")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(NAMES, st.binary(min_size=1, max_size=3000)),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    pick=st.tuples(st.integers(min_value=0), st.integers(min_value=0), st.integers(1, 255)),
)
def test_round_trip_and_any_flip_detected(
    items: list[tuple[str, bytes]], pick: tuple[int, int, int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        rels = [(f"nested dir/{n}" if i % 2 else n) for i, (n, _) in enumerate(items)]
        for rel, (_, data) in zip(rels, items, strict=True):
            _write(root, rel, data)
        out = build(root, Path(tmp) / "manifest-sha256.txt")
        assert verify(root, out) == []
        which = pick[0] % len(items)
        data = bytearray(items[which][1])
        data[pick[1] % len(data)] ^= pick[2]
        (root / rels[which]).write_bytes(bytes(data))
        found = verify(root, out, jobs=1 + pick[0] % 2)
        assert [(d.kind, d.path) for d in found] == [(CHECKSUM, rels[which])]
