"""The reports as HTML pages people read: a coverage calendar, per-day counts, what is missing and why, the
figures and the map pages.

Pages are self-contained: inline CSS, no script, no font or library from the internet; figures are PNG files
in the folder beside the page (``figures_<period>/``), linked by relative paths, so a copied ``reports/`` folder
opens offline. The pages are plain functions of the report data (JSON) and the figure manifest: the same data
gives the same bytes.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from ..formats.facts import ordered
from ..formats.l1b import direction_name
from ..plan import RunPlan
from ..run.reasons import RETRY_NEXT_RUN, text_of
from .report import format_rate, region_sentence, report_title

#: Rows of the not-archived table a page shows (the CSV has them all).
MISSING_ROWS_SHOWN = 300

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:78em;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;
vertical-align:top;font-size:.9em}th{background:#f3f3f3}td.n{text-align:right}
code{font-size:90%}.status-complete{color:#1a7f37}.status-incomplete{color:#b35900}
.months{display:flex;flex-wrap:wrap;gap:14px}.month{font-size:11px}.month b{display:block;margin-bottom:2px}
.grid{display:grid;grid-template-columns:repeat(7,18px);gap:2px}
.grid span{width:18px;height:18px;font-size:9px;line-height:18px;text-align:center;border-radius:2px;color:#111}
.c-full{background:#1a9850;color:#fff!important}.c-most{background:#a6d96a}.c-part{background:#fdae61}
.c-none{background:#d73027;color:#fff!important}.c-empty{background:#d9d9d9}.c-out{background:none}
.c-unlisted{background:#fff;outline:1px dashed #999}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.gallery{display:flex;flex-wrap:wrap;gap:10px}.gallery figure{width:360px;margin:0}
details{margin:.5em 0}summary{cursor:pointer}
"""

CELL_CLASSES = {
    "full": "every catalogued granule archived",
    "most": "90 % or more archived",
    "part": "some archived",
    "none": "none archived",
    "empty": "nothing catalogued",
    "unlisted": "not listed yet",
}


def page(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        out.append(
            "<tr>"
            + "".join(f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


# -- the coverage calendar -----------------------------------------------------------------------------------
def cell_class(expected: int, archived: int) -> str:
    if expected == 0:
        return "empty"
    if archived >= expected:
        return "full"
    if archived == 0:
        return "none"
    return "most" if archived >= 0.9 * expected else "part"


def calendar_html(
    days: Sequence[Mapping[str, Any]], first: date, last: date, missing: Sequence[Mapping[str, Any]] = ()
) -> str:
    """One cell per day from ``first`` to ``last``, coloured by archived/expected; hover for counts and reasons."""
    by_day = {d["day"]: d for d in days}
    reasons: dict[str, Counter] = defaultdict(Counter)
    for m in missing:
        reasons[m["day"]][m["reason_class"]] += 1
    months = []
    month = date(first.year, first.month, 1)
    while month <= last:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        cells = ["<span class='c-out'></span>"] * month.weekday()
        day = month
        while day < following:
            iso = day.isoformat()
            if day < first or day > last:
                cells.append(f"<span class='c-out'>{day.day}</span>")
            elif iso not in by_day:
                cells.append(f"<span class='c-unlisted' title='{iso}: not listed yet'>{day.day}</span>")
            else:
                d = by_day[iso]
                tip = (
                    f"{iso}: {d['archived']} of {d['expected']} archived "
                    f"(ascending {d['ascending']['archived']}/{d['ascending']['expected']}, "
                    f"descending {d['descending']['archived']}/{d['descending']['expected']})"
                )
                if reasons.get(iso):
                    tip += "; not archived: " + ", ".join(f"{n} {k}" for k, n in sorted(reasons[iso].items()))
                klass = cell_class(d["expected"], d["archived"])
                cells.append(f"<span class='c-{klass}' title='{_e(tip)}'>{day.day}</span>")
            day += timedelta(days=1)
        months.append(f"<div class='month'><b>{month:%B %Y}</b><div class='grid'>{''.join(cells)}</div></div>")
        month = following
    legend = (
        "<p class='legend'>"
        + "".join(f"<span class='c-{k}'></span>{_e(v)}" for k, v in CELL_CLASSES.items())
        + " (hover over a day for its counts and reasons)</p>"
    )
    return f"<div class='months'>{''.join(months)}</div>{legend}"


# -- shared pieces -------------------------------------------------------------------------------------------
def missing_html(missing: Sequence[Mapping[str, Any]], csv_name: str | None) -> list[str]:
    if not missing:
        return ["<p>Every catalogued granule is archived.</p>"]
    by_reason = Counter(m["reason_class"] for m in missing)
    out = ["<p>" + "; ".join(f"{n} {_e(k)}: {_e(text_of(k))}" for k, n in sorted(by_reason.items())) + ".</p>"]
    rows = [
        [
            f"<code>{_e(m['granule_id'])}</code>",
            _e(m["day"]),
            _e(m.get("orbit_direction", "")),
            _e(m["reason"]),
            _e(m["attempts"]),
            _e(str(m.get("last_error", ""))[:200]),
            _e(m.get("what_to_do", RETRY_NEXT_RUN)),
        ]
        for m in missing[:MISSING_ROWS_SHOWN]
    ]
    out.append(_table(["granule", "day", "orbit", "reason", "attempts", "last error", "what to do"], rows, [4]))
    if len(missing) > MISSING_ROWS_SHOWN and csv_name:
        out.append(
            f"<p>The first {MISSING_ROWS_SHOWN} of {len(missing)} are shown; <a href='{_e(csv_name)}'>"
            f"{_e(csv_name)}</a> lists every granule.</p>"
        )
    return out


def facts_html(disagreements: Sequence[Mapping[str, Any]], count_problems: Sequence[str], total: int = 0) -> list[str]:
    """The cross-checks of the catalogue, the file names, the files and the archive: agreement in one line, or
    every disagreement with what each source says."""
    if not disagreements and not count_problems:
        return [
            "<p>The catalogue, the file names, the files and the archive agree on every archived granule "
            "(orbit direction, times, size, id; per day and direction, archived + not archived = catalogued).</p>"
        ]
    out = []
    if disagreements:
        count = max(total, len(disagreements))
        out.append(
            f"<p class='status-incomplete'><strong>{count}</strong> fact(s) of archived granules disagree between "
            "sources. The archive keeps what the file holds; check the granule on G-Portal and report it.</p>"
        )
        rows = [
            [
                f"<code>{_e(d['granule_id'])}</code>",
                _e(d.get("day", "")),
                _e(d["fact"]),
                "<br>".join(f"{_e(source)}: <strong>{_e(value)}</strong>" for source, value in ordered(d["values"])),
            ]
            for d in disagreements[:MISSING_ROWS_SHOWN]
        ]
        out.append(_table(["granule", "day", "fact", "what each source says"], rows))
    if count_problems:
        out += ["<ul>", *(f"<li>{_e(c)}</li>" for c in count_problems[:MISSING_ROWS_SHOWN]), "</ul>"]
    return out


def _figure(src: str, caption: str, alt: str) -> str:
    return (
        f"<figure><a href='{_e(src)}'><img src='{_e(src)}' alt='{_e(alt)}'></a>"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


# -- a year's page ---------------------------------------------------------------------------------------------
def year_page(
    report: Mapping[str, Any],
    *,
    first: date,
    last: date,
    csv_name: str,
    figures_dir: str | None = None,
    figures: Mapping[str, Any] | None = None,
    maps: Sequence[tuple[str, str]] = (),
) -> str:
    """The year's report page. ``figures_dir`` is the figures folder relative to the page; ``maps`` holds
    (day, relative link) pairs of the year's map pages."""
    year = report["year"]
    orbit = report["orbit_direction"]
    ver = report["verification"]
    body = [
        f"<h1>{_e(report_title([report.get('sensor', 'AMSR-2')]))}, {year}</h1>",
        f"<p>Archive <code>{_e(report['archive'])}</code>: <strong>{report['archived_granules']} of "
        f"{report['expected_granules']}</strong> catalogued granules archived "
        f"({format_rate(report['success_rate_percent'])}); silent losses: <strong>{report['silent_losses']}</strong>. "
        f"Verification: {ver.get('valid', 0)} valid, {ver.get('damaged', 0)} damaged swaths; "
        f"{len(report['parts'])} part file(s). Every granule: <a href='{_e(csv_name)}'>{_e(csv_name)}</a>. "
        f"{_e(region_sentence(report))}</p>",
        _table(
            ["", "expected", "archived"],
            [
                ["all granules", str(report["expected_granules"]), str(report["archived_granules"])],
                ["ascending", str(orbit["A"]["expected"]), str(orbit["A"]["archived"])],
                ["descending", str(orbit["D"]["expected"]), str(orbit["D"]["archived"])],
            ],
            [1, 2],
        ),
        "<h2>Coverage</h2>",
        calendar_html(report["days"], first, last, report["missing"]),
    ]
    figure_files = {f["kind"]: f for f in (figures or {}).get("figures", [])}
    if figures_dir and "daily_counts" in figure_files:
        body.append(
            _figure(
                f"{figures_dir}/daily_counts.png",
                "Granules per day: archived ascending and descending half-orbits, against the catalogue.",
                "granules per day",
            )
        )
    body += ["<h2>Not archived</h2>", *missing_html(report["missing"], csv_name)]
    body += [
        "<h2>Cross-checks</h2>",
        *facts_html(report.get("disagreements", []), report.get("count_problems", [])),
    ]
    if figures_dir and "histograms" in figure_files:
        n = figure_files["histograms"].get("swaths", 0)
        body += [
            "<h2>Brightness temperatures</h2>",
            _figure(
                f"{figures_dir}/histograms.png",
                f"Distribution per channel and orbit direction over {n} sample swaths (the quick-looks' sample); "
                "grey: outside the physical range that `amsr2flow verify` checks.",
                "brightness temperature histograms",
            ),
        ]
    quicklooks = (figures or {}).get("quicklooks", [])
    if figures_dir and quicklooks:
        body.append("<h2>Quick-looks</h2>")
        if not (figures or {}).get("geolocation"):
            body.append(
                "<p>This archive holds no positions (<code>geolocation: false</code>), so swaths are drawn "
                "in scan and pixel space; set <code>geolocation: true</code> for maps.</p>"
            )
        body.append("<div class='gallery'>")
        body += [
            _figure(
                f"{figures_dir}/{q['file_name']}",
                f"{q['scan_start_utc'][:16]} {direction_name(q['orbit_direction'])}",
                q["granule_id"],
            )
            for q in quicklooks
        ]
        body.append("</div>")
    if maps:
        body += [
            "<h2>Map pages</h2>",
            "<p>Every swath of the day as a layer to toggle (interactive; opens offline):</p><ul>",
            *(f"<li><a href='{_e(link)}'>{_e(day)}</a></li>" for day, link in maps),
            "</ul>",
        ]
    rows = [
        [
            _e(d["day"]),
            str(d["expected"]),
            str(d["archived"]),
            f"{d['ascending']['archived']}/{d['ascending']['expected']}",
            f"{d['descending']['archived']}/{d['descending']['expected']}",
        ]
        for d in report["days"]
    ]
    body += [
        "<h2>Per day</h2>",
        f"<details><summary>{len(rows)} days</summary>",
        _table(["day", "expected", "archived", "ascending", "descending"], rows, [1, 2, 3, 4]),
        "</details>",
    ]
    if report["verification"].get("problems"):
        body += ["<h2>Verification problems</h2><ul>"]
        body += [f"<li>{_e(p)}</li>" for p in report["verification"]["problems"][:200]]
        body.append("</ul>")
    return page(f"{report_title([report.get('sensor', 'AMSR-2')])} {year}", body)


# -- the run's page ----------------------------------------------------------------------------------------
def run_page(
    run: Mapping[str, Any],
    *,
    year_pages: Mapping[int, str],
    calendars: Mapping[int, tuple[Sequence[Mapping[str, Any]], date, date]],
    csv_name: str | None,
) -> str:
    """The run's page: status, one row per year (linked to its page), a calendar per year, what is missing."""
    status = run["status"]
    klass = "status-complete" if status == "complete" else "status-incomplete"
    rows = []
    for y in run["years"]:
        link = year_pages.get(y["year"])
        name = f"<a href='{_e(link)}'>{y['year']}</a>" if link else str(y["year"])
        rows.append(
            [
                name,
                f"<code>{_e(y['archive'])}</code>",
                str(y["expected_granules"]),
                str(y["archived_granules"]),
                format_rate(y["success_rate_percent"]),
                str(y["damaged_swaths"]),
                str(y.get("disagreements", "")),
                str(y["parts"]),
            ]
        )
    body = [
        f"<h1>{_e(report_title(run.get('sensors', ['AMSR-2'])))}, {_e(run['start'])} to {_e(run['end'])}</h1>",
        f"<p>Status: <strong class='{klass}'>{_e(status)}</strong>. <strong>{run['archived_granules']} of "
        f"{run['expected_granules']}</strong> catalogued granules archived "
        f"({format_rate(run['success_rate_percent'])});"
        f" silent losses: {run['silent_losses']}; damaged swaths: {run['damaged_swaths']}"
        + (f"; facts that disagree: {run['disagreement_count']}. " if "disagreement_count" in run else ". ")
        + (f"Every granule: <a href='{_e(csv_name)}'>{_e(csv_name)}</a>. " if csv_name else "")
        + f"Software: {_e(run.get('software', ''))}. {_e(region_sentence(run))}</p>",
        _table(
            ["year", "archive", "expected", "archived", "success", "damaged", "disagree", "parts"],
            rows,
            [2, 3, 4, 5, 6, 7],
        ),
    ]
    layout = run.get("remote_layout")
    if layout:
        body.append(
            f"<p>Remote layout: <code>{_e(layout['template'])}</code> ({_e(layout['how'])}; probe granule "
            f"<code>{_e(layout['probe_granule'])}</code>).</p>"
        )
    body.append("<h2>Coverage</h2>")
    for year in sorted(calendars):
        days, first, last = calendars[year]
        missing = [m for m in run["missing"] if m["day"].startswith(str(year))]
        body += [f"<h3>{year}</h3>", calendar_html(days, first, last, missing)]
    body += ["<h2>Not archived</h2>", *missing_html(run["missing"], csv_name)]
    if "disagreements" in run:
        body += [
            "<h2>Cross-checks</h2>",
            *facts_html(run["disagreements"], run.get("count_problems", []), run.get("disagreement_count", 0)),
        ]
    if any(m.get("retryable") for m in run["missing"]):
        body.append("<p>Granules marked as retried next run are fetched again by rerunning the same command.</p>")
    return page(report_title(run.get("sensors", ["AMSR-2"])), body)


def interim_page(interim: Mapping[str, Any], plan: RunPlan) -> str:
    """The page of an interim report (a run that stopped early): what is done, per day, and why the rest is not."""
    days = interim.get("days_by_year", {})
    calendars = {
        year: (days[str(year)], y.first_day, y.day_after_last - timedelta(days=1))
        for year, y in plan.years.items()
        if str(year) in days
    }
    return run_page(interim, year_pages={}, calendars=calendars, csv_name=None)
