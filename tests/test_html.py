"""The self-contained HTML report: sections, escaping, no network, plots, and a real browser."""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ctmd_validate import synth, validate
from ctmd_validate.html import COLOURS, render_html

DEFECTS = ("missing-slice", "stray-file")
#: a file name as hostile as they come: markup, quotes, an ampersand, mathtext, a backslash
HOSTILE = "<script>alert(\"x&y\")</script> $1 & $2 C:\\x 'q'.dcm"
HEADINGS = (
    "Summary",
    "Findings",
    "Demographics: recomputed vs published",
    "Sex and age per class",
    "Infection labels: per lobe and per slice",
    "Cases: geometry overview",
    "Checks",
)
VOID = {"meta", "col", "br", "hr", "img", "input", "link", "wbr", "source"}


class Page(HTMLParser):
    """What a test needs from a page: headings, texts, URLs, table rows, tag balance."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.h2: list[str] = []
        self.texts: list[str] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.rows: dict[str, list[str]] = {}  # demographics: class -> cell texts
        self.errors: list[str] = []
        self._stack: list[str] = []
        self._h2: list[str] | None = None
        self._row: list[str] | None = None
        self._row_class: str | None = None
        self.feed(text)
        self.close()
        if self._stack:
            self.errors.append(f"unclosed: {self._stack}")

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "xlink:href", "action", "poster"}:
                self.urls.append(value or "")
            if name.startswith("on"):
                self.handlers.append(name)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag in VOID:
            return
        self._stack.append(tag)
        if tag == "h2":
            self._h2 = []
        if tag == "tr" and dict(attrs).get("data-class") is not None:
            self._row, self._row_class = [], dict(attrs)["data-class"]
        if tag in {"td", "th"} and self._row is not None:
            self._row.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self._stack or self._stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self._stack[-1:] or 'nothing'}")
            return
        self._stack.pop()
        if tag == "h2" and self._h2 is not None:
            self.h2.append("".join(self._h2).strip())
            self._h2 = None
        if tag == "tr" and self._row is not None:
            assert self._row_class is not None
            self.rows[self._row_class] = [c.strip() for c in self._row]
            self._row = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._h2 is not None:
            self._h2.append(data)
        if self._row:
            self._row[-1] += data

    @property
    def text(self) -> str:
        return "".join(self.texts)


@pytest.fixture(scope="module")
def defect_data(
    _clean_trees: Callable[[str, str], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The JSON report of a tiny tree with a missing slice and stray files (as make_tree)."""
    root = tmp_path_factory.mktemp("html") / "tree"
    shutil.copytree(_clean_trees("tiny", "readme"), root)
    for name in DEFECTS:
        synth.apply_defect(root, name)
    return validate(root, "subset", jobs=1).to_json()


@pytest.fixture(scope="module")
def defect_page(defect_data: dict[str, Any]) -> str:
    return render_html(defect_data)


def hostile(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a hostile string in every place a file or folder name can reach."""
    data = copy.deepcopy(data)
    data["dataset_root"] = f"/data/{HOSTILE}"
    data["hints"] = [HOSTILE]
    data["baseline"] = HOSTILE
    data["profile"]["name"] = HOSTILE
    first = data["findings"][0]
    first.update(message=HOSTILE, path=f"P001/{HOSTILE}", case=HOSTILE)
    first.update(expected=HOSTILE, actual={HOSTILE: [HOSTILE]}, files=[HOSTILE])
    check = next(c for c in data["checks"] if c["id"] == first["id"])
    check.update(title=HOSTILE, fix=f"``{HOSTILE}``", crashed=HOSTILE)
    data["cases"][0].update(case=HOSTILE, path=HOSTILE)
    data["cases"][0]["class"] = HOSTILE
    demo = data["stats"]["demographics"]
    demo[HOSTILE] = demo.pop(next(iter(demo)))
    demo[HOSTILE]["age_bins"] = {HOSTILE: 1}
    versions = data["stats"]["labels"]["versions"]
    versions[HOSTILE] = versions.pop("original")
    versions[HOSTILE]["positive_cells_by_lobe"][HOSTILE] = 3
    versions[HOSTILE]["slice_file"] = HOSTILE
    return data


# --------------------------------------------------------------------------- content


def test_sections_come_in_order_and_the_verdict_is_first(defect_data, defect_page):
    page = Page(defect_page)
    assert page.h2 == list(HEADINGS)
    assert not defect_data["valid"]
    assert defect_page.index("INVALID") < defect_page.index('id="findings"')
    assert 'class="verdict v-invalid"' in defect_page
    summary = defect_page[: defect_page.index('id="findings"')]
    for key in ("error", "warning", "info", "waived", "known"):
        tile = re.search(rf'class="tile t-{key}"><span class=n>([\d,]+)<', summary)
        assert tile is not None and int(tile[1]) == defect_data["summary"][key], key
    for value in (
        defect_data["profile"]["name"],
        defect_data["mode"],
        defect_data["tool"]["version"],
        defect_data["generated"],
        defect_data["dataset_root"],
    ):
        assert html.escape(value) in summary


def test_every_check_with_findings_is_a_group_with_its_title_and_fix(defect_data, defect_page):
    checks = {c["id"]: c for c in defect_data["checks"]}
    ids = {f["id"] for f in defect_data["findings"]}
    assert {"geometry.spacing.missing_slice", "structure.stray_file"} <= ids
    groups = re.findall(r"<code class=cid>([^<]+)</code>", defect_page)
    assert sorted(groups) == sorted(ids)
    for check_id in ids:
        start = defect_page.index(f"<code class=cid>{check_id}</code>")
        group = defect_page[start : defect_page.index("</details>", start)]
        fix = re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(checks[check_id]["fix"]))
        title = re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(checks[check_id]["title"]))
        assert f"<b>Fix:</b> {fix}" in group, check_id
        assert title in group, check_id
        n = sum(1 for f in defect_data["findings"] if f["id"] == check_id)
        assert f"{n} counted" in group and group.count("<tr class=") == n, check_id


def test_groups_are_worst_first_and_big_groups_fold(defect_data):
    data = copy.deepcopy(defect_data)
    extra = [dict(data["findings"][-1], message=f"extra {i}") for i in range(12)]
    data["findings"] += extra
    page = render_html(data)
    summary = r'<details ([^>]*)><summary><span class="badge b-(\w+)">\w+</span> <code class=cid>'
    order = [m[1] for m in re.findall(summary, page)]
    ranks = [{"error": 0, "warning": 1, "info": 2}[s] for s in order]
    assert ranks == sorted(ranks) and ranks[0] == 0
    big = data["findings"][-1]["id"]
    opening = re.search(summary + re.escape(big) + "<", page)
    assert opening is not None and "open" not in opening[1]
    small = next(f["id"] for f in data["findings"] if f["severity"] == "error")
    opening = re.search(summary + re.escape(small) + "<", page)
    assert opening is not None and opening[1].endswith(" open")


def test_every_finding_is_shown_with_its_place_and_values(defect_data, defect_page):
    page = Page(defect_page)
    for f in defect_data["findings"]:
        assert html.escape(f["message"]) in defect_page, f["message"]
        assert f["message"] in page.texts
        where = f["path"] or f["case"] or "dataset"
        assert f"<code>{html.escape(where)}</code>" in defect_page
    gap = next(f for f in defect_data["findings"] if f["id"] == "geometry.spacing.missing_slice")
    assert html.escape('"between_mm": [-179.5, -175.5]') in defect_page or gap["actual"] is None
    assert f"{len(gap['files'])} files</summary>" in defect_page


def test_known_and_waived_findings_are_greyed_with_their_state(defect_data):
    data = copy.deepcopy(defect_data)
    stray = [f for f in data["findings"] if f["id"] == "structure.stray_file"]
    stray[0]["known"] = True
    stray[1]["waived"] = "macOS metadata & notes, harmless"
    page = render_html(data)
    rows = re.findall(r'<tr class="inactive">.*?</tr>', page)
    assert len(rows) == 2
    assert any("known (baseline)" in r and html.escape(stray[0]["message"]) in r for r in rows)
    assert any("macOS metadata &amp; notes, harmless" in r for r in rows)
    # a group with nothing counted comes last, folded
    groups = re.findall(r'<details class="group g-(\w+)"( open)?>', page)
    assert groups[-1] == ("inactive", "")
    assert [g for g, _ in groups].count("inactive") == 1


def test_demographics_table_has_a_row_per_class_beside_the_published_figures(defect_data):
    demo = defect_data["stats"]["demographics"]
    page = Page(render_html(defect_data))
    assert set(page.rows) == set(demo)
    for cls, d in demo.items():
        cells = page.rows[cls]
        pub = d["published"]
        # class | cases here, published | male x2 | female x2 | other | ages | mean x2 | sd x2
        assert cells[1:7] == [
            str(d["cases"]),
            str(pub["cases"]),
            str(d["male"]),
            str(pub["male"]),
            str(d["female"]),
            str(pub["female"]),
        ]
        assert float(cells[9]) == d["age_mean"] and float(cells[10]) == pub["age_mean"]
        assert float(cells[11]) == d["age_sd"] and float(cells[12]) == pub["age_sd"]


def test_demographic_mismatches_are_highlighted(defect_data):
    data = copy.deepcopy(defect_data)
    covid = data["stats"]["demographics"]["COVID-19"]
    pub = covid["published"]
    # a complete class: equal figures (at the published precision) are not marked
    covid.update(complete=True, cases=pub["cases"], male=pub["male"], female=pub["female"] + 1)
    covid.update(age_mean=round(pub["age_mean"] + 0.004, 3), age_sd=pub["age_sd"] + 1)
    page = render_html(data)
    row = re.search(r'<tr data-class="COVID-19">.*?</tr>', page)
    assert row is not None
    marked = re.findall(r'<td class="(?:pub )?mismatch"[^>]*>([^<]*)</td>', row[0])
    assert marked == [
        str(pub["female"] + 1),
        str(pub["female"]),
        f"{pub['age_sd'] + 1:g}",
        f"{pub['age_sd']:g}",
    ]
    assert "incomplete class" not in row[0]
    # an incomplete class differs as expected: marked amber, not red
    cap = re.search(r'<tr data-class="CAP">.*?</tr>', page)
    assert cap is not None and "differs" in cap[0] and "mismatch" not in cap[0]


def test_one_svg_per_plot(defect_data, defect_page):
    versions = defect_data["stats"]["labels"]["versions"]
    assert all(v["positive_cells_by_lobe"] for v in versions.values())
    assert defect_page.count("<svg") == 2 + len(versions)
    for version in versions:
        assert f'aria-label="Positive lobe cells per lobe, label version {version}"' in defect_page
    assert "<?xml" not in defect_page and "<!DOCTYPE svg" not in defect_page
    ids = re.findall(r'\sid="([^"]+)"', defect_page)
    assert len(ids) == len(set(ids)), "duplicate element ids across the inline SVGs"
    # infected slices beside the published total
    original = versions["original"]
    assert re.search(
        rf"<th scope=row>original</th>.*?<td>{original['infected_slices']:,}</td>"
        rf"<td>{original['published_infected_slices']:,}</td>",
        defect_page,
    )


def test_missing_lobe_counts_are_said_not_plotted(defect_data):
    data = copy.deepcopy(defect_data)
    versions = data["stats"]["labels"]["versions"]
    versions["original"]["positive_cells_by_lobe"] = None
    del versions["updated-1"]["positive_cells_by_lobe"]
    page = render_html(data)
    assert page.count("<svg") == 2
    assert page.count('class="nolobe"') == 2
    del data["stats"]["labels"]
    page = render_html(data)
    assert page.count("<svg") == 2
    assert "No label files were read for this report." in page


def test_cases_and_checks_tables(defect_data, defect_page):
    for case in defect_data["cases"]:
        g = case["geometry"]
        row = re.search(rf"<th scope=row[^>]*>{case['case']}</th>.*?</tr>", defect_page)
        assert row is not None, case["case"]
        assert f"{g['rows']:g}\u00d7{g['columns']:g}" in row[0]
        assert f"<td>{g['z_extent']:g}</td>" in row[0]
    for check in defect_data["checks"]:
        row = re.search(rf"<tr><td><code>{re.escape(check['id'])}</code></td>.*?</tr>", defect_page)
        assert row is not None, check["id"]
        assert f'b-{check["status"]}">{check["status"]}<' in row[0]


def test_no_network_no_script_and_well_formed(defect_page):
    page = Page(defect_page)
    assert page.errors == []
    assert defect_page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.urls and all(u.startswith("#") for u in page.urls), page.urls
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", defect_page)
    assert "@import" not in defect_page and "url(http" not in defect_page
    assert page.handlers == []


def test_hostile_names_are_escaped_everywhere(defect_data):
    page_text = render_html(hostile(defect_data))
    page = Page(page_text)
    assert page.errors == []
    assert "<script" not in page_text.lower()
    assert "script" not in page.tags and page.handlers == []
    escaped = html.escape(HOSTILE)
    assert escaped in page_text
    assert HOSTILE in page.texts  # shown as text, unchanged
    assert f"<code>{escaped}</code>" in page_text  # the fix's ``literal``
    assert f'data-class="{escaped}"' in page_text and f'title="{escaped}"' in page_text
    assert f"<b>Fix:</b> <code>{escaped}</code>" in page_text
    # plot labels are text inside the SVG, shown as they are (no mathtext, no markup)
    by_lobe = hostile(defect_data)["stats"]["labels"]["versions"][HOSTILE]["positive_cells_by_lobe"]
    assert f"{HOSTILE}: {sum(by_lobe.values()):,} positive lobe cells" in page.texts
    assert f"{HOSTILE} \u00b7 here (n=1)" in page.texts


def test_clean_report_is_valid_and_green(clean_tiny_report):
    data = clean_tiny_report.to_json()
    page = render_html(data)
    assert data["valid"] and 'class="verdict v-valid"><span class="word">VALID<' in page
    assert Page(page).h2 == list(HEADINGS)
    assert render_html(data) == page  # deterministic: same report, same page


def test_a_minimal_report_renders():
    data = {
        "report_version": "1.4",
        "tool": {"name": "ctmd-validate", "version": "0.1.0"},
        "dataset_root": "/nowhere",
        "profile": {"name": "release", "complete": True, "source": "release.toml"},
        "valid": True,
        "summary": {"error": 0, "warning": 0, "info": 0, "waived": 0, "known": 0},
        "checks": [],
        "findings": [],
        "hints": [],
    }
    page = render_html(data)
    parsed = Page(page)
    assert parsed.errors == [] and parsed.h2 == list(HEADINGS)
    assert "No findings." in page and "<svg" not in page


def test_importing_the_module_loads_no_matplotlib():
    code = (
        "import sys, ctmd_validate.html as h\n"
        "assert 'matplotlib' not in sys.modules\n"
        "d = {'valid': True, 'stats': {'demographics': {'A': {'cases': 1, 'male': 1,"
        " 'female': 0, 'age_bins': {'30-39': 1}}}}}\n"
        "assert h.render_html(d).count('<svg') == 2\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- a real browser


def chromium() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.browser
def test_page_in_headless_chromium(defect_data, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip(
            "headless Chromium not found (/usr/bin/chromium or chromium on PATH); "
            "install it with: apt-get install -y chromium"
        )
    image = pytest.importorskip("PIL.Image", reason="Pillow (comes with matplotlib) missing")
    page = tmp_path / "report.html"
    page.write_text(render_html(hostile(defect_data)), encoding="utf-8")
    shot = tmp_path / "report.png"
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
    ]
    uri = page.as_uri()
    subprocess.run(
        [*args, f"--screenshot={shot}", uri], capture_output=True, timeout=90, check=True
    )
    dom = subprocess.run(
        [*args, "--dump-dom", uri], capture_output=True, timeout=90, check=True, text=True
    ).stdout

    assert shot.is_file() and shot.stat().st_size > 10_000
    with image.open(shot) as im:
        rgb = im.convert("RGB")
    assert rgb.size == (1280, 2400)
    colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "the page looks blank"
    white = max(colours)[0] / (1280 * 2400)
    assert white < 0.9, f"{white:.0%} of the page is one colour"
    top = rgb.crop((0, 0, 1280, 500))
    red = _rgb(COLOURS["invalid"])
    near = sum(
        n
        for n, c in top.getcolors(maxcolors=1 << 20) or []
        if all(abs(a - b) <= 8 for a, b in zip(c, red, strict=True))
    )
    assert near > 20_000, "no INVALID banner in the top of the page"

    parsed = Page(dom)
    assert parsed.h2 == list(HEADINGS)
    assert "script" not in parsed.tags and HOSTILE in parsed.texts
    assert dom.count("<svg") == 2 + len(defect_data["stats"]["labels"]["versions"])
