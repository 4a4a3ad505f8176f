"""A self-contained HTML page of a JSON report: no script, no network, plots as inline SVG.

``render_html`` takes the dict that ``Report.to_json()`` returns (already scrubbed of
identifying values) and renders only what is in it. Every string of the report is escaped.
Plots are drawn with matplotlib's object-oriented API (no pyplot, no GUI backend, the global
backend untouched) and embedded as inline SVG with text kept as text; matplotlib is imported
only when a page is rendered.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["render_html"]

_RANK = {"error": 0, "warning": 1, "info": 2}
#: severity and verdict colours, shared by the CSS and the browser test
COLOURS = {
    "error": "#b42318",
    "warning": "#b54708",
    "info": "#175cd3",
    "passed": "#067647",
    "skipped": "#667085",
    "valid": "#067647",
    "invalid": "#b42318",
}
#: a group of findings is shown open when it has at most this many findings
OPEN_LIMIT = 10
#: expected/actual values longer than this are folded into a <details>
_FOLD = 240
_FONTS = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
    "'Noto Sans', 'Liberation Sans', 'DejaVu Sans', sans-serif"
)
_MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"
_CLASS_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")
_SEX_COLOURS = {"male": "#4e79a7", "female": "#e15759", "other": "#bab0ac"}
_LOBE_ORDER = ("RUL", "RML", "RLL", "LUL", "LLL")


# --------------------------------------------------------------------------- small helpers


def _e(value: Any) -> str:
    """``value`` as text, escaped for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _prose(value: Any) -> str:
    """A check's title or fix text, escaped, with its ``literal`` spans as ``<code>``."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", _e(value))


def _fmt(value: Any) -> str:
    """A number or value for a table cell (escaped): ``—`` for none, integers grouped."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return _e(value)
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return _e(value)


def _count(value: Any) -> int:
    """A count from the report; anything that is not a finite number >= 0 counts 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


def _real(value: Any) -> float | None:
    """A finite number from the report, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _compact(value: Any) -> str:
    """``expected``/``actual`` as compact JSON (a plain string as it is), escaped."""
    if value is None:
        return "—"
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    )
    if len(text) <= _FOLD:
        return f"<code>{_e(text)}</code>"
    return (
        f"<details class=fold><summary><code>{_e(text[: _FOLD // 2])}…</code></summary>"
        f"<code>{_e(text)}</code></details>"
    )


def _badge(kind: str, text: str | None = None) -> str:
    """A small coloured label: a severity, a status or a state."""
    css = re.sub(r"[^a-z]", "", kind.lower()) or "none"
    return f'<span class="badge b-{css}">{_e(text if text is not None else kind)}</span>'


def _table(
    head: Iterable[str], rows: Iterable[str], css: str = "", widths: Iterable[str] = ()
) -> str:
    """A table from header labels (escaped here) and ready ``<tr>`` rows.

    ``widths``: CSS widths of the columns (a fixed layout, alike from table to table).
    """
    cells = "".join(f"<th scope=col>{_e(h)}</th>" for h in head)
    body = "".join(rows)
    cls = f' class="{css}"' if css else ""
    cols = "".join(f'<col style="width: {w}">' for w in widths)
    colgroup = f"<colgroup>{cols}</colgroup>" if cols else ""
    return (
        f'<div class="scroll"><table{cls}>{colgroup}<thead><tr>{cells}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _same(here: Any, published: Any) -> bool | None:
    """Whether a recomputed figure equals the published one at the published precision."""
    a, b = _real(here), _real(published)
    if a is None or b is None:
        return None
    text = repr(b)
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text else 0
    return round(a, decimals) == round(b, decimals)


# --------------------------------------------------------------------------- plots


def _mpl_text(text: Any) -> str:
    """A label for matplotlib: ``$`` would start mathtext (and may fail to parse).

    With every ``$`` escaped the text is never mathtext, and matplotlib shows ``\\$`` as
    ``$`` and any other backslash as it is.
    """
    return str(text).replace("$", r"\$")


class _Plotter:
    """Draws figures with matplotlib and turns them into inline SVG with unique ids."""

    def __init__(self) -> None:
        try:
            import matplotlib
            from matplotlib.figure import Figure
            from matplotlib.patches import Patch
            from matplotlib.ticker import MaxNLocator, PercentFormatter
        except ImportError:  # a broken install: the page still renders, without plots
            self.available = False
            return
        self.available = True
        self.mpl = matplotlib
        self.Figure = Figure
        self.Patch = Patch
        self.MaxNLocator = MaxNLocator
        self.PercentFormatter = PercentFormatter
        self.count = 0

    def rc(self) -> Any:
        """The settings every figure is drawn and saved with."""
        self.count += 1
        return self.mpl.rc_context(
            {
                "svg.fonttype": "none",
                "svg.hashsalt": f"ctmd-{self.count}",
                "font.family": "sans-serif",
                "font.sans-serif": ["DejaVu Sans"],
                "font.size": 9,
                "axes.spines.top": False,
                "axes.spines.right": False,
                "axes.titlesize": 10,
                "axes.titleweight": "bold",
                "axes.edgecolor": "#98a2b3",
                "xtick.color": "#344054",
                "ytick.color": "#344054",
                "axes.labelcolor": "#344054",
                "legend.frameon": False,
            }
        )

    def svg(self, fig: Any, label: str) -> str:
        """``fig`` as an inline ``<svg>``: no XML prologue, metadata or clashing ids."""
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
        prefix = f"plot{self.count}-"
        text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', text)
        text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", text)
        text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', text)
        text = re.sub(r"font-family:[^;\"]*", f"font-family: {_FONTS}", text)
        return text.replace(
            "<svg ", f'<svg role="img" aria-label="{_e(label)}" class="chart" ', 1
        ).strip()


def _sex_plot(p: _Plotter, demo: dict[str, Any]) -> str:
    """Per class, the share of male/female/other cases here beside the published split."""
    rows: list[tuple[str, int, int, int]] = []
    for cls, d in demo.items():
        d = _dict(d)
        rows.append(
            (
                f"{cls} · here (n={_count(d.get('cases'))})",
                _count(d.get("male")),
                _count(d.get("female")),
                _count(d.get("other")),
            )
        )
        pub = _dict(d.get("published"))
        if "male" in pub or "female" in pub:
            male, female = _count(pub.get("male")), _count(pub.get("female"))
            n = _count(pub.get("cases")) or male + female
            rows.append((f"{cls} · published (n={n})", male, female, 0))
    with p.rc():
        fig = p.Figure(figsize=(7.6, 0.38 * len(rows) + 1.3))
        ax = fig.add_subplot()
        seen: set[str] = set()
        for i, (_label, *counts) in enumerate(rows):
            total = sum(counts)
            left = 0.0
            for sex, n in zip(("male", "female", "other"), counts, strict=True):
                if not n:
                    continue
                share = n / total
                ax.barh(
                    i,
                    share,
                    left=left,
                    color=_SEX_COLOURS[sex],
                    height=0.7,
                )
                seen.add(sex)
                if share >= 0.07:
                    ax.text(left + share / 2, i, str(n), ha="center", va="center", color="white")
                left += share
            if not total:
                ax.text(0.01, i, "no sex recorded", va="center", color="#667085")
        ax.set_yticks(range(len(rows)), [_mpl_text(r[0]) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(p.PercentFormatter(1.0))
        ax.set_title("Sex per class (share of cases; counts in the bars)")
        if seen:
            handles = [p.Patch(color=_SEX_COLOURS[k], label=k) for k in _SEX_COLOURS if k in seen]
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return p.svg(fig, "Sex per class, recomputed and published")


def _decade(label: str) -> int:
    m = re.match(r"\d+", label)
    return int(m.group()) if m else 1000


def _age_plot(p: _Plotter, demo: dict[str, Any]) -> str:
    """Per class, the cases per decade of age (bars side by side)."""
    bins = {cls: _dict(_dict(d).get("age_bins")) for cls, d in demo.items()}
    decades = sorted({k for b in bins.values() for k in b}, key=lambda k: (_decade(k), k))
    with p.rc():
        fig = p.Figure(figsize=(7.6, 3.3))
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(bins))
        for j, (cls, b) in enumerate(bins.items()):
            d = _dict(demo[cls])
            pub = _dict(d.get("published"))
            label = f"{cls}: n={_count(d.get('ages_in_years'))}"
            if _real(d.get("age_mean")) is not None:
                label += f", {_fmt(d.get('age_mean'))} ± {_fmt(d.get('age_sd'))}"
            if _real(pub.get("age_mean")) is not None:
                label += f" (published {_fmt(pub['age_mean'])} ± {_fmt(pub.get('age_sd'))})"
            xs = [i + (j - (len(bins) - 1) / 2) * width for i in range(len(decades))]
            ys = [_count(b.get(k)) for k in decades]
            ax.bar(
                xs,
                ys,
                width=width * 0.95,
                color=_CLASS_COLOURS[j % len(_CLASS_COLOURS)],
                label=_mpl_text(label),
            )
        ax.set_xticks(range(len(decades)), [_mpl_text(k) for k in decades])
        ax.yaxis.set_major_locator(p.MaxNLocator(integer=True))
        ax.set_xlabel("age in years")
        ax.set_ylabel("cases")
        ax.set_title("Age per class (cases per decade; mean ± SD in the legend)")
        if not decades:
            ax.text(0.5, 0.5, "no ages recorded", ha="center", transform=ax.transAxes)
        if bins:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return p.svg(fig, "Cases per decade of age, per class")


def _lobe_plot(p: _Plotter, version: str, by_lobe: dict[str, Any], top: int) -> str:
    """One label version's positive lobe cells per lobe."""
    known = [k for k in _LOBE_ORDER if k in by_lobe]
    lobes = known + sorted(k for k in by_lobe if k not in known)
    values = [_count(by_lobe[k]) for k in lobes]
    with p.rc():
        fig = p.Figure(figsize=(4.4, 2.9))
        ax = fig.add_subplot()
        colours = ["#e15759" if k.startswith("R") else "#4e79a7" for k in lobes]
        bars = ax.bar([_mpl_text(k) for k in lobes], values, color=colours, width=0.65)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=8)
        ax.set_ylim(0, max(1, top) * 1.15)
        ax.yaxis.set_major_locator(p.MaxNLocator(integer=True))
        ax.set_ylabel("positive lobe cells")
        ax.set_title(_mpl_text(f"{version}: {sum(values):,} positive lobe cells"))
        return p.svg(fig, f"Positive lobe cells per lobe, label version {version}")


# --------------------------------------------------------------------------- sections


def _summary(data: dict[str, Any]) -> str:
    """The verdict, the counts and how the run was set up."""
    valid = data.get("valid") is True
    summary = _dict(data.get("summary"))
    checks = _dict(summary.get("checks"))
    profile = _dict(data.get("profile"))
    tool = _dict(data.get("tool"))
    policy = data.get("policy")
    scan = _dict(data.get("scan"))
    verdict = "VALID" if valid else "INVALID"
    tiles = "".join(
        f'<div class="tile t-{k}"><span class=n>{_fmt(_count(summary.get(k)))}</span>'
        f"<span class=k>{k}</span></div>"
        for k in ("error", "warning", "info", "waived", "known")
    )
    meta: list[tuple[str, str]] = [
        ("Dataset root", f"<code>{_e(data.get('dataset_root'))}</code>"),
        (
            "Profile",
            f"<b>{_e(profile.get('name'))}</b>"
            + (" (complete release)" if profile.get("complete") else " (partial copy allowed)")
            + (
                f" <span class=muted>{_e(profile['source'])}</span>"
                if profile.get("source")
                else ""
            ),
        ),
        ("Mode", _e(data.get("mode", "full"))),
        (
            "Baseline",
            f"<code>{_e(data['baseline'])}</code>"
            if data.get("baseline")
            else "<span class=muted>none</span>",
        ),
        ("Config", _e(data["config"]) if data.get("config") else "<span class=muted>none</span>"),
    ]
    if isinstance(policy, dict):
        meta.append(
            (
                "De-identification policy",
                f"{_e(policy.get('name'))} (PS3.15 edition {_e(policy.get('standard_edition'))})",
            )
        )
    meta += [
        (
            "Scanned",
            f"{_fmt(summary.get('cases'))} cases, {_fmt(summary.get('files'))} image files"
            + (
                f" in {_fmt(scan.get('seconds'))} s ({_fmt(scan.get('jobs'))} jobs)" if scan else ""
            ),
        ),
        (
            "Checks",
            f"{_fmt(checks.get('total'))} run: {_fmt(checks.get('passed'))} passed, "
            f"{_fmt(checks.get('failed'))} failed, {_fmt(checks.get('skipped'))} skipped",
        ),
        ("Tool", f"{_e(tool.get('name', 'ctmd-validate'))} {_e(tool.get('version'))}"),
        ("Report version", _e(data.get("report_version"))),
        ("Generated", _e(data.get("generated", "—"))),
    ]
    if data.get("redacted"):
        meta.append(("Identifying values", "found in the data and masked in this report"))
    rows = "".join(f"<tr><th scope=row>{k}</th><td>{v}</td></tr>" for k, v in meta)
    hints = _list(data.get("hints"))
    hint_html = (
        '<div class="hints"><b>Hints</b><ul>'
        + "".join(f"<li>{_e(h)}</li>" for h in hints)
        + "</ul></div>"
        if hints
        else '<p class="muted">Hints: none.</p>'
    )
    css = "valid" if valid else "invalid"
    return (
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="verdict v-{css}"><span class="word">{verdict}</span>'
        f'<span class="why">{_fmt(_count(summary.get("error")))} errors, '
        f"{_fmt(_count(summary.get('warning')))} warnings, "
        f"{_fmt(_count(summary.get('info')))} info</span></div>"
        f'<div class="tiles">{tiles}</div>'
        f'<table class="meta"><tbody>{rows}</tbody></table>{hint_html}</section>'
    )


def _state(finding: dict[str, Any]) -> tuple[str, str]:
    """(css class, state cell) of a finding: counted, known from the baseline or waived."""
    if finding.get("waived") is not None:
        return "inactive", _badge("waived") + f" {_e(finding['waived'])}"
    if finding.get("known"):
        return "inactive", _badge("known", "known (baseline)")
    return "", '<span class="muted">counted</span>'


def _finding_row(f: dict[str, Any]) -> str:
    css, state = _state(f)
    where = f.get("path") or f.get("case") or "dataset"
    files = [str(x) for x in _list(f.get("files"))]
    extra = (
        f"<details class=fold><summary>{len(files):,} file{'s' * (len(files) != 1)}</summary>"
        "<ul class=files>"
        + "".join(f"<li><code>{_e(x)}</code></li>" for x in files)
        + "</ul></details>"
        if files
        else ""
    )
    case = f.get("case")
    case_note = f'<div class="muted small">case {_e(case)}</div>' if case and f.get("path") else ""
    severity = str(f.get("severity", ""))
    return (
        f'<tr class="{css}"><td>{_badge(severity)}</td>'
        f'<td class="where"><code>{_e(where)}</code>{case_note}{extra}</td>'
        f'<td class="msg">{_e(f.get("message"))}</td>'
        f'<td class="val">{_compact(f.get("expected"))}</td>'
        f'<td class="val">{_compact(f.get("actual"))}</td><td>{state}</td></tr>'
    )


def _findings(data: dict[str, Any]) -> str:
    """Findings grouped by check id, worst first; each group with the check's title and fix."""
    checks = {str(c.get("id")): c for c in _list(data.get("checks")) if isinstance(c, dict)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in _list(data.get("findings")):
        if isinstance(f, dict):
            groups.setdefault(str(f.get("id")), []).append(f)
    if not groups:
        return '<section id="findings"><h2>Findings</h2><p>No findings.</p></section>'

    def counted(f: dict[str, Any]) -> bool:
        return f.get("waived") is None and not f.get("known")

    def key(item: tuple[str, list[dict[str, Any]]]) -> tuple[int, int, str]:
        check_id, items = item
        active = [f for f in items if counted(f)]
        worst = min((_RANK.get(str(f.get("severity")), 3) for f in active or items), default=3)
        return (0 if active else 1, worst, check_id)

    parts = []
    for check_id, items in sorted(groups.items(), key=key):
        items = sorted(items, key=lambda f: (not counted(f), _RANK.get(str(f.get("severity")), 3)))
        active = [f for f in items if counted(f)]
        worst = min(
            (str(f.get("severity")) for f in active or items), key=lambda s: _RANK.get(s, 3)
        )
        check = _dict(checks.get(check_id))
        known = sum(1 for f in items if f.get("known") and f.get("waived") is None)
        waived = sum(1 for f in items if f.get("waived") is not None)
        tally = f"{len(active):,} counted"
        if known:
            tally += f", {known:,} known"
        if waived:
            tally += f", {waived:,} waived"
        is_open = " open" if active and len(items) <= OPEN_LIMIT else ""
        fix = check.get("fix")
        fix_html = (
            f'<p class="fix"><b>Fix:</b> {_prose(fix)}</p>'
            if fix
            else '<p class="fix muted">No fix text for this check.</p>'
        )
        title = check.get("title") or "(check not in the report's check list)"
        parts.append(
            f'<details class="group g-{"active" if active else "inactive"}"{is_open}>'
            f"<summary>{_badge(worst)} <code class=cid>{_e(check_id)}</code> "
            f'<span class="title">{_prose(title)}</span> '
            f'<span class="tally">{_e(tally)}</span></summary>'
            f"{fix_html}"
            + _table(
                ("Severity", "Where", "Message", "Expected", "Actual", "State"),
                (_finding_row(f) for f in items),
                "findings",
                ("86px", "22%", "33%", "15%", "17%", "13%"),
            )
            + "</details>"
        )
    total = sum(len(v) for v in groups.values())
    return (
        '<section id="findings"><h2>Findings</h2>'
        f'<p class="muted">{total:,} findings from {len(groups):,} checks, worst first. '
        f"Groups of more than {OPEN_LIMIT} findings start folded.</p>"
        + "".join(parts)
        + "</section>"
    )


def _pair(here: Any, published: Any, complete: bool, has_published: bool) -> str:
    """Two cells, recomputed and published, marked when they differ."""
    if not has_published:
        return f"<td>{_fmt(here)}</td><td class=muted>—</td>"
    same = _same(here, published)
    css = "" if same is not False else ("mismatch" if complete else "differs")
    mark = ' title="differs from the published figure"' if same is False else ""
    return f'<td class="{css}"{mark}>{_fmt(here)}</td><td class="pub {css}">{_fmt(published)}</td>'


def _demographics(data: dict[str, Any]) -> str:
    """Recomputed demographics per class beside the published table."""
    stats = _dict(data.get("stats"))
    demo = _dict(stats.get("demographics"))
    head = '<section id="demographics"><h2>Demographics: recomputed vs published</h2>'
    if not demo:
        return head + "<p>No demographics in this report.</p></section>"
    rows = []
    any_partial = False
    for cls, d in demo.items():
        d = _dict(d)
        pub = d.get("published")
        has = isinstance(pub, dict)
        pub = _dict(pub)
        complete = d.get("complete") is True
        any_partial |= not complete
        tag = "" if complete else " " + _badge("partial", "incomplete class")
        cells = "".join(
            _pair(d.get(k), pub.get(k), complete, has and k in pub)
            for k in ("cases", "male", "female")
        )
        rows.append(
            f'<tr data-class="{_e(cls)}"><th scope=row>{_e(cls)}{tag}</th>{cells}'
            f"<td>{_fmt(d.get('other'))}</td><td>{_fmt(d.get('ages_in_years'))}</td>"
            + "".join(
                _pair(d.get(k), pub.get(k), complete, has and k in pub)
                for k in ("age_mean", "age_sd")
            )
            + "</tr>"
        )
    top = (
        "<tr><th rowspan=2 scope=col>Class</th>"
        + "".join(f"<th colspan=2 scope=colgroup>{h}</th>" for h in ("Cases", "Male", "Female"))
        + "<th rowspan=2 scope=col>Other</th><th rowspan=2 scope=col>Ages known</th>"
        + "".join(f"<th colspan=2 scope=colgroup>{h}</th>" for h in ("Age mean", "Age SD"))
        + "</tr><tr>"
        + "<th scope=col>here</th><th scope=col>published</th>" * 5
        + "</tr>"
    )
    note = (
        '<p class="muted small">Figures are compared at the published precision. '
        '<span class="mismatch legend">red</span>: a complete class differs from the '
        "published table"
        + (
            '; <span class="differs legend">amber</span>: the class is incomplete here, so '
            "its figures are expected to differ"
            if any_partial
            else ""
        )
        + f". Source: {_e(stats.get('published_source', '—'))}.</p>"
    )
    return (
        head
        + f'<div class="scroll"><table class="demo"><thead>{top}</thead>'
        + f"<tbody>{''.join(rows)}</tbody></table></div>{note}</section>"
    )


def _plots(data: dict[str, Any], p: _Plotter) -> str:
    """The per-class sex and age plots."""
    demo = _dict(_dict(data.get("stats")).get("demographics"))
    head = '<section id="plots"><h2>Sex and age per class</h2>'
    if not demo:
        return head + "<p>No demographics to plot.</p></section>"
    if not p.available:
        return head + "<p>Plots unavailable: matplotlib is not installed.</p></section>"
    return (
        head + f'<figure class="plot">{_sex_plot(p, demo)}<figcaption>Share of male, female and '
        "other cases per class: the cases here above the published split.</figcaption></figure>"
        + f'<figure class="plot">{_age_plot(p, demo)}<figcaption>Cases per decade of age '
        "(ages from Patient's Age); the published table gives only mean ± SD."
        "</figcaption></figure></section>"
    )


def _labels(data: dict[str, Any], p: _Plotter) -> str:  # noqa: C901, PLR0912  (each absent figure says why)
    """Positive lobe cells per lobe for each label version; infected slices vs published."""
    head = '<section id="labels"><h2>Infection labels: per lobe and per slice</h2>'
    labels = _dict(data.get("stats")).get("labels")
    if not isinstance(labels, dict):
        return head + "<p>No label files were read for this report.</p></section>"
    versions = {str(k): _dict(v) for k, v in _dict(labels.get("versions")).items()}
    out = [head]
    plotted = {v: _dict(e.get("positive_cells_by_lobe")) for v, e in versions.items()}
    plotted = {v: by for v, by in plotted.items() if by}
    top = max((_count(n) for by in plotted.values() for n in by.values()), default=0)
    figures = []
    for version, entry in versions.items():
        if version in plotted:
            if p.available:
                figures.append(
                    f'<figure class="plot lobe">{_lobe_plot(p, version, plotted[version], top)}'
                    "</figure>"
                )
            else:
                figures.append(f"<p>{_e(version)}: plots unavailable (matplotlib missing).</p>")
        else:
            why = "no lobe file" if not entry.get("lobe_file") else "lobe labels unreadable"
            figures.append(
                f'<p class="nolobe">Label version <b>{_e(version)}</b>: no per-lobe counts '
                f"({why}).</p>"
            )
    if not versions:
        figures.append("<p>No label versions in this report.</p>")
    out.append(f'<div class="plots">{"".join(figures)}</div>')
    if plotted and p.available:
        out.append(
            '<p class="muted small">Positive lobe cells: (case, slice) pairs labelled infected '
            "in each lobe; right lung red, left lung blue; the same scale in every plot.</p>"
        )

    rows = []
    for version, entry in versions.items():
        ok = entry.get("reproduces_published")
        verdict = (
            _badge("passed", "reproduced")
            if ok is True
            else _badge("error", "differs")
            if ok is False
            else '<span class="muted">no published figure</span>'
        )
        rows.append(
            f"<tr><th scope=row>{_e(version)}</th>"
            f"<td><code>{_e(entry.get('slice_file') or '—')}</code></td>"
            f"<td>{_fmt(entry.get('infected_slices'))}</td>"
            f"<td>{_fmt(entry.get('published_infected_slices'))}</td><td>{verdict}</td>"
            f"<td><code>{_e(entry.get('lobe_file') or '—')}</code></td>"
            f"<td>{_fmt(entry.get('positive_lobe_cells'))}</td></tr>"
        )
    out.append("<h3>Infected slices per label version</h3>")
    out.append(
        _table(
            (
                "Version",
                "Slice file",
                "Infected slices",
                "Published",
                "",
                "Lobe file",
                "Positive lobe cells",
            ),
            rows,
        )
    )
    non = _dict(labels.get("non_infected_slices"))
    if non:
        text = (
            f"Slices without infection ({_e(non.get('version'))}): "
            f"recomputed {_fmt(non.get('computed'))}, published {_fmt(non.get('published'))}"
        )
        if non.get("reason"):
            text += f" — {_e(non['reason'])}"
        out.append(f"<p>{text}.</p>")
    here = _dict(labels.get("labelled_cases"))
    pub = _dict(labels.get("published_labelled_cases"))
    if here or pub:
        items = ", ".join(
            f"{_e(k)} {_fmt(here.get(k))} (published {_fmt(pub.get(k))})"
            for k in dict.fromkeys([*here, *pub])
        )
        out.append(f"<p>Labelled cases in Index.csv: {items}.</p>")
    order = _dict(_dict(data.get("inferred")).get("label_slice_order"))
    if order:
        out.append(
            f"<p>Label slice order: <code>{_e(order.get('value'))}</code>"
            + (f" (index 0 = {_e(order['index_0'])} end)" if order.get("index_0") else "")
            + f"; {_fmt(order.get('cases_agreeing'))} cases agree, "
            f"{_fmt(len(_list(order.get('cases_disagreeing'))))} disagree.</p>"
        )
    return "".join(out) + "</section>"


def _cases(data: dict[str, Any]) -> str:
    """One row per case: class, files and geometry at a glance, counted findings."""
    head = '<section id="cases"><h2>Cases: geometry overview</h2>'
    cases = [c for c in _list(data.get("cases")) if isinstance(c, dict)]
    if not cases:
        return head + "<p>No case folders in this report.</p></section>"
    rows = []
    for c in cases:
        g = _dict(c.get("geometry"))
        size = (
            f"{_fmt(g.get('rows'))}\u00d7{_fmt(g.get('columns'))}"
            if g.get("rows") is not None or g.get("columns") is not None
            else "—"
        )
        unreadable = _count(c.get("readable")) < _count(c.get("files"))
        counts = "".join(
            f'<td class="{"c-" + k if _count(c.get(k)) else "muted"}">{_fmt(c.get(k))}</td>'
            for k in ("error", "warning", "info")
        )
        rows.append(
            f'<tr><th scope=row title="{_e(c.get("path"))}">{_e(c.get("case"))}</th>'
            f'<td class="cls">{_e(c.get("class"))}</td><td>{_fmt(c.get("files"))}</td>'
            f'<td class="{"c-error" if unreadable else ""}">{_fmt(c.get("readable"))}</td>'
            f"<td>{size}</td><td>{_fmt(g.get('slice_thickness'))}</td>"
            f"<td>{_fmt(g.get('pixel_spacing'))}</td><td>{_fmt(g.get('z_extent'))}</td>"
            f"{counts}</tr>"
        )
    return (
        head
        + _table(
            (
                "Case",
                "Class",
                "Files",
                "Readable",
                "Rows\u00d7Columns",
                "Slice thickness (mm)",
                "Pixel spacing (mm)",
                "Z extent (mm)",
                "Errors",
                "Warnings",
                "Info",
            ),
            rows,
            "num",
        )
        + '<p class="muted small">Geometry: medians over the readable images of each case; '
        "counts: findings that count (not waived, not known).</p></section>"
    )


def _checks(data: dict[str, Any]) -> str:
    """Every check with its status, default severity and counts."""
    head = '<section id="checks"><h2>Checks</h2>'
    checks = [c for c in _list(data.get("checks")) if isinstance(c, dict)]
    if not checks:
        return head + "<p>No checks in this report.</p></section>"
    rows = []
    for c in checks:
        status = str(c.get("status", ""))
        crashed = (
            f'<div class="c-error small">crashed: {_e(c["crashed"])}</div>'
            if c.get("crashed")
            else ""
        )
        rows.append(
            f"<tr><td><code>{_e(c.get('id'))}</code></td><td>{_prose(c.get('title'))}{crashed}</td>"
            f"<td>{_badge(status)}</td><td>{_badge(str(c.get('severity', '')))}</td>"
            f"<td>{_fmt(c.get('examined'))}</td><td>{_fmt(c.get('findings'))}</td>"
            f"<td>{_fmt(c.get('known', 0))}</td></tr>"
        )
    return (
        head
        + _table(("Check", "Title", "Status", "Severity", "Examined", "Findings", "Known"), rows)
        + "</section>"
    )


# --------------------------------------------------------------------------- the page

_CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: {_FONTS}; font-size: 15px; line-height: 1.45;
  color: #101828; background: #f2f4f7; }}
main {{ max-width: 1240px; margin: 0 auto; padding: 20px 28px 48px; background: #fff;
  min-height: 100vh; }}
h1 {{ font-size: 1.55rem; margin: 0 0 4px; }}
h2 {{ font-size: 1.2rem; margin: 34px 0 12px; padding-bottom: 4px;
  border-bottom: 2px solid #eaecf0; }}
h3 {{ font-size: 1rem; margin: 20px 0 8px; }}
code {{ font-family: {_MONO}; font-size: 0.86em; overflow-wrap: anywhere; }}
nav {{ font-size: 0.9rem; margin: 6px 0 0; }}
nav a {{ margin-right: 14px; color: #175cd3; text-decoration: none; }}
.muted {{ color: #667085; }}
.small {{ font-size: 0.85em; }}
.verdict {{ display: flex; align-items: baseline; gap: 18px; padding: 14px 22px;
  border-radius: 8px; color: #fff; }}
.v-valid {{ background: {COLOURS["valid"]}; }}
.v-invalid {{ background: {COLOURS["invalid"]}; }}
.verdict .word {{ font-size: 2.1rem; font-weight: 800; letter-spacing: 0.04em; }}
.verdict .why {{ font-size: 1.05rem; }}
.tiles {{ display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }}
.tile {{ min-width: 110px; padding: 8px 14px; border-radius: 8px; background: #f9fafb;
  border: 1px solid #eaecf0; border-top: 4px solid #98a2b3; }}
.tile .n {{ display: block; font-size: 1.45rem; font-weight: 700; }}
.tile .k {{ color: #475467; font-size: 0.85rem; text-transform: uppercase; }}
.t-error {{ border-top-color: {COLOURS["error"]}; }}
.t-error .n {{ color: {COLOURS["error"]}; }}
.t-warning {{ border-top-color: {COLOURS["warning"]}; }}
.t-warning .n {{ color: {COLOURS["warning"]}; }}
.t-info {{ border-top-color: {COLOURS["info"]}; }}
.t-info .n {{ color: {COLOURS["info"]}; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ padding: 5px 9px; text-align: left; vertical-align: top;
  border-bottom: 1px solid #eaecf0; }}
thead th {{ background: #f2f4f7; color: #344054; font-weight: 600; white-space: nowrap; }}
tbody tr:nth-child(even) {{ background: #f9fafb; }}
table.meta {{ width: auto; }}
table.meta th {{ color: #475467; font-weight: 600; white-space: nowrap; }}
table.num td, table.demo td {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.num td.cls {{ text-align: left; white-space: nowrap; }}
table.findings {{ table-layout: fixed; min-width: 900px; }}
table.demo th, table.demo td {{ text-align: center; }}
table.demo tbody th {{ text-align: left; white-space: nowrap; }}
table.demo td.pub {{ color: #475467; border-right: 1px solid #eaecf0; }}
.scroll {{ overflow-x: auto; }}
.mismatch {{ background: #fee4e2 !important; color: #912018; font-weight: 600; }}
.differs {{ background: #fef0c7 !important; color: #93370d; }}
.legend {{ padding: 0 4px; border-radius: 3px; }}
.badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.78rem;
  font-weight: 600; color: #fff; background: #667085; white-space: nowrap; }}
.b-error, .b-failed {{ background: {COLOURS["error"]}; }}
.b-warning {{ background: {COLOURS["warning"]}; }}
.b-info {{ background: {COLOURS["info"]}; }}
.b-passed {{ background: {COLOURS["passed"]}; }}
.b-skipped, .b-known, .b-waived {{ background: #98a2b3; }}
.b-partial {{ background: #fef0c7; color: #93370d; }}
.c-error {{ color: {COLOURS["error"]}; font-weight: 600; }}
.c-warning {{ color: {COLOURS["warning"]}; font-weight: 600; }}
.c-info {{ color: {COLOURS["info"]}; }}
.hints {{ background: #eff8ff; border-left: 4px solid #175cd3; padding: 8px 14px;
  margin: 10px 0; }}
.hints ul {{ margin: 4px 0; padding-left: 20px; }}
details.group {{ border: 1px solid #eaecf0; border-radius: 8px; margin: 8px 0;
  background: #fff; }}
details.group > summary {{ cursor: pointer; padding: 8px 12px; background: #f9fafb;
  border-radius: 8px; }}
details.group[open] > summary {{ border-bottom: 1px solid #eaecf0;
  border-radius: 8px 8px 0 0; }}
details.group > .fix, details.group > .scroll {{ margin: 8px 12px; }}
details.g-inactive > summary {{ color: #667085; }}
.cid {{ font-weight: 600; }}
.tally {{ color: #475467; font-size: 0.88em; margin-left: 6px; }}
.tally::before {{ content: "· "; }}
.fix {{ background: #ecfdf3; border-left: 4px solid {COLOURS["passed"]}; padding: 6px 10px;
  border-radius: 4px; }}
figcaption {{ color: #475467; font-size: 0.85rem; max-width: 760px; }}
tr.inactive td {{ color: #98a2b3; }}
tr.inactive .badge {{ opacity: 0.6; }}
details.fold summary {{ cursor: pointer; }}
ul.files {{ margin: 2px 0; padding-left: 18px; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }}
figure.plot {{ margin: 10px 0; }}
svg.chart {{ max-width: 100%; height: auto; }}
.nolobe {{ padding: 8px 12px; background: #f9fafb; border: 1px dashed #d0d5dd;
  border-radius: 6px; }}
footer {{ margin-top: 40px; color: #667085; font-size: 0.85rem; }}
"""

_SECTIONS = (
    ("summary", "Summary"),
    ("findings", "Findings"),
    ("demographics", "Demographics"),
    ("plots", "Sex and age"),
    ("labels", "Labels"),
    ("cases", "Cases"),
    ("checks", "Checks"),
)


def render_html(data: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML5 page (no script, no network)."""
    plotter = _Plotter()
    verdict = "VALID" if data.get("valid") is True else "INVALID"
    root = data.get("dataset_root", "")
    nav = "".join(f'<a href="#{key}">{label}</a>' for key, label in _SECTIONS)
    body = "".join(
        (
            _summary(data),
            _findings(data),
            _demographics(data),
            _plots(data, plotter),
            _labels(data, plotter),
            _cases(data),
            _checks(data),
        )
    )
    tool = _dict(data.get("tool"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{verdict} · ctmd-validate report · {_e(root)}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        f"<header><h1>COVID-CT-MD validation report</h1>"
        f'<div class="muted"><code>{_e(root)}</code></div><nav>{nav}</nav></header>'
        f"{body}"
        f"<footer>Generated by {_e(tool.get('name', 'ctmd-validate'))} "
        f"{_e(tool.get('version'))} on {_e(data.get('generated', '—'))}; one file, no script, "
        "nothing loaded from the network.</footer>"
        "</main></body></html>\n"
    )
