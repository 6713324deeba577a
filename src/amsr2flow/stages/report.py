"""Verification reports: what the catalogue listed against what the archives hold, and why anything is missing.

A year's report joins three sources: the year's listing (what G-Portal catalogued), the archive's index (what
was archived), and the failure ledger (why a granule is not archived). A catalogued granule that is in neither
the archive nor the ledger is a *silent loss*; the report counts them separately, and there should be none.

It also compares the facts both know (``formats.facts``): each archived swath's orbit direction, times, size
and id against its catalogue record, plus what the day jobs found when they compared the files themselves
(in the ledger); and, per day and direction, that the granules archived *as* that direction plus those recorded
missing make up what the catalogue listed. Any disagreement is listed with every source's value and makes the
run exit 3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__, joblog
from ..formats import facts
from ..formats.archive import sensor_of_archive
from ..formats.l1b import DIRECTIONS, utc_iso_ms
from ..ledger import read_ledger
from ..plan import RunPlan
from ..run.reasons import ACCEPTABLE, RETRY_NEXT_RUN, Reason, remedy_of, text_of

#: The directions a listing and an index know, as the report names them.
DIRECTION_NAMES = DIRECTIONS
#: Disagreements the run report lists (the year reports list all; the count is always whole).
RUN_DISAGREEMENTS_LISTED = 1000

MISSING_ROWS_IN_MARKDOWN = 500


def _rate(numerator: int, denominator: int) -> float | None:
    return round(100.0 * numerator / denominator, 3) if denominator else None


def report_title(sensors: Sequence[str]) -> str:
    """``AMSR-2 collection report``, ``AMSR-E and AMSR-2 collection report``."""
    return f"{' and '.join(sorted(sensors, reverse=True)) or 'AMSR-2'} collection report"


def year_report(
    *,
    year: int,
    listing: pd.DataFrame,
    archive_path: Path,
    archive_index: pd.DataFrame,
    verification: Mapping[str, Any],
    parts: Sequence[Mapping[str, Any]],
    ledger: Mapping[str, Mapping[str, Any]],
    unrecorded: Callable[[str, str], str] | None = None,
    time_tolerance_s: float = facts.TIME_TOLERANCE_S,
) -> dict[str, Any]:
    """The report of one year as plain data (JSON-serialisable, deterministic).

    ``unrecorded(granule_id, day)`` names why a granule with neither a swath nor a ledger entry is missing
    (interim reports: the run stopped before it, or its job failed); without it such a granule is a silent loss.
    """
    archived_ids = set(archive_index["granule_id"]) if len(archive_index) else set()
    # Granules the region's footprint test kept whose scans all miss the region: neither expected nor missing.
    outside = sorted(
        g
        for g in set(listing["granule_id"]) - archived_ids
        if (ledger.get(g) or {}).get("reason_class") == Reason.OUTSIDE_REGION
    )
    if outside:
        listing = listing[~listing["granule_id"].isin(outside)]
    # The direction each archived granule is stored as (the index's orbit type); interim reports know only ids.
    stored = (
        dict(zip(archive_index["granule_id"], archive_index["orbit_type"].astype(str), strict=True))
        if "orbit_type" in archive_index.columns
        else None
    )
    missing = []
    for row in listing.itertuples(index=False):
        if row.granule_id in archived_ids:
            continue
        entry = ledger.get(row.granule_id)
        reason = entry.get("reason_class") if entry and entry.get("status") != "resolved" else None
        if reason is None and unrecorded is not None:
            reason = unrecorded(row.granule_id, row.day)
        missing.append(
            {
                "granule_id": row.granule_id,
                "day": row.day,
                "orbit_direction": row.orbit_direction,
                "reason_class": str(reason or Reason.UNACCOUNTED),
                "reason": text_of(reason or Reason.UNACCOUNTED),
                "what_to_do": remedy_of(reason or Reason.UNACCOUNTED),
                "last_error": (entry or {}).get("last_error", ""),
                "attempts": int((entry or {}).get("attempts", 0)),
                "retryable": bool((entry or {}).get("retryable", False)),
            }
        )

    def direction_counts(rows: pd.DataFrame, direction: str) -> dict[str, int]:
        """Catalogued as ``direction``; archived *as* it (the stored orbit type, where the index has one);
        catalogued as it and not archived. Granules whose catalogue record gives no direction count nowhere."""
        listed = rows["orbit_direction"] == direction
        ids = rows["granule_id"]
        if stored is None:
            archived = int((listed & ids.isin(archived_ids)).sum())
        else:
            known = rows["orbit_direction"].isin(list(DIRECTION_NAMES))
            archived = sum(stored.get(g) == direction for g in ids[known])
        return {
            "expected": int(listed.sum()),
            "archived": int(archived),
            "missing": int((listed & ~ids.isin(archived_ids)).sum()),
        }

    by_day, count_problems = [], []
    for day, rows in listing.groupby("day", sort=True):
        ids = set(rows["granule_id"])
        counts = {name: direction_counts(rows, d) for d, name in DIRECTION_NAMES.items()}
        by_day.append({"day": day, "expected": len(ids), "archived": len(ids & archived_ids), **counts})
        if stored is not None:
            count_problems += direction_count_problems(str(day), counts)
    orbit = {d: direction_counts(listing, d) for d in DIRECTION_NAMES}
    reasons: dict[str, int] = {}
    for m in missing:
        reasons[m["reason_class"]] = reasons.get(m["reason_class"], 0) + 1
    not_listed = sorted(archived_ids - set(listing["granule_id"]))
    expected_n = len(listing)
    archived_n = len(archived_ids & set(listing["granule_id"]))
    disagreements = (
        catalogue_disagreements(listing, archive_index, ledger, time_tolerance_s) if stored is not None else []
    )
    return {
        "year": year,
        "sensor": sensor_of_archive(archive_path.name),
        "archive": archive_path.name,
        "expected_granules": expected_n,
        "archived_granules": archived_n,
        "outside_region": outside,
        "missing_granules": len(missing),
        "silent_losses": reasons.get(Reason.UNACCOUNTED, 0),
        "success_rate_percent": _rate(archived_n, expected_n),
        "missing_by_reason": dict(sorted(reasons.items())),
        "orbit_direction": orbit,
        "archived_not_in_listing": not_listed,
        "verification": dict(verification),
        "parts": list(parts),
        "days": by_day,
        "missing": missing,
        "disagreements": disagreements,
        "count_problems": count_problems,
    }


def direction_count_problems(day: str, counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """A day's per-direction check: archived as the direction + catalogued as it and not archived = catalogued as
    it; and a direction with catalogued granules and none archived is said, not left a quiet zero."""
    problems = []
    for name, c in counts.items():
        if not c["expected"]:
            continue
        if c["archived"] + c["missing"] != c["expected"]:
            problems.append(
                f"{day} {name}: {c['expected']} catalogued, but {c['archived']} archived as {name} and "
                f"{c['missing']} not archived (stored orbit types disagree with the catalogue)"
            )
        elif not c["archived"]:
            problems.append(f"{day} {name}: {c['expected']} catalogued, none archived")
    return problems


def catalogue_disagreements(
    listing: pd.DataFrame,
    archive_index: pd.DataFrame,
    ledger: Mapping[str, Mapping[str, Any]],
    time_tolerance_s: float = facts.TIME_TOLERANCE_S,
) -> list[dict[str, Any]]:
    """Each archived swath against its catalogue record, and what its day job found comparing the file itself
    (the ledger's ``disagreements``), merged per granule and fact."""
    records = {str(row["granule_id"]): row for row in listing.to_dict("records")}
    found: list[facts.Disagreement] = []
    for row in archive_index.to_dict("records"):
        granule_id = str(row["granule_id"])
        listed = records.get(granule_id)
        cropped = bool(row.get("region"))  # begins and ends where the region does, not where the granule does
        found += facts.stored_disagreements(
            granule_id,
            orbit_type=str(row["orbit_type"]),
            scan_start_utc="" if cropped else _iso(row.get("scan_start_utc")),
            scan_end_utc="" if cropped else _iso(row.get("scan_end_utc")),
            source_size=int(row.get("source_size", -1)),
            catalogue=facts.CatalogueRecord.from_row(listed) if listed is not None else None,
            time_tolerance_s=time_tolerance_s,
        )
        for item in (ledger.get(granule_id) or {}).get("disagreements", []):
            found.append(facts.Disagreement.from_json(item))
    return [
        {
            "granule_id": d.granule_id,
            "day": str(records[d.granule_id]["day"]) if d.granule_id in records else "",
            "fact": d.fact,
            "values": dict(d.values),
            "message": d.message,
        }
        for d in facts.merge(found)
    ]


def _iso(stamp: Any) -> str:
    """An index time (a pandas Timestamp, NaT when unknown, or already text) as the ISO text the facts compare."""
    if isinstance(stamp, str):
        return stamp
    return "" if stamp is None or pd.isna(stamp) else utc_iso_ms(stamp.timestamp())  # the one rule for times


def run_report(
    year_reports: Sequence[Mapping[str, Any]],
    *,
    start: str,
    end: str,
    layout_choice: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    expected = sum(r["expected_granules"] for r in year_reports)
    archived = sum(r["archived_granules"] for r in year_reports)
    reasons: dict[str, int] = {}
    for r in year_reports:
        for k, v in r["missing_by_reason"].items():
            reasons[k] = reasons.get(k, 0) + v
    damaged = sum(int(r["verification"].get("damaged", 0)) for r in year_reports)
    disagreements = [d for r in year_reports for d in r.get("disagreements", [])]
    count_problems = [c for r in year_reports for c in r.get("count_problems", [])]
    return {
        "software": f"amsr2flow {__version__}",
        "start": start,
        "end": end,
        "expected_granules": expected,
        "archived_granules": archived,
        "missing_granules": expected - archived,
        "silent_losses": sum(r["silent_losses"] for r in year_reports),
        "damaged_swaths": damaged,
        "success_rate_percent": _rate(archived, expected),
        "missing_by_reason": dict(sorted(reasons.items())),
        "disagreement_count": len(disagreements),
        "disagreements": disagreements[:RUN_DISAGREEMENTS_LISTED],
        "count_problems": count_problems,
        "status": "complete"
        if expected == archived and not damaged and not disagreements and not count_problems
        else "incomplete",
        "sensors": sorted({str(r.get("sensor", "AMSR-2")) for r in year_reports}) or ["AMSR-2"],
        "years": [
            {k: r[k] for k in ("year", "archive", "expected_granules", "archived_granules", "success_rate_percent")}
            | {
                "damaged_swaths": int(r["verification"].get("damaged", 0)),
                "parts": len(r["parts"]),
                "disagreements": len(r.get("disagreements", [])),
            }
            for r in year_reports
        ],
        "missing": [m for r in year_reports for m in r["missing"]],
        "remote_layout": dict(layout_choice) if layout_choice else None,
        **_run_region(year_reports),
    }


def scans_kept(index: pd.DataFrame) -> dict[str, int]:
    """Scans the archive's cropped swaths keep, and the scans (without overlap) of their granules."""
    if "region" not in index.columns or not len(index):
        return {"scans_kept": 0, "granule_scans": 0}
    cropped = index[(index["region"].astype(str) != "") & (index["granule_scans"] > 0)]
    return {"scans_kept": int(cropped["n_scans"].sum()), "granule_scans": int(cropped["granule_scans"].sum())}


def _run_region(year_reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's region and the catalogued records it left out over all years ({} for the globe)."""
    regions = [r["region"] for r in year_reports if r.get("region")]
    if not regions:
        return {}
    described = sorted({r["description"] for r in regions})
    return {
        "region": {
            "description": "; ".join(described),
            "left_out": sum(r["left_out"] for r in regions),
            "no_scan_inside": sum(r.get("no_scan_inside", 0) for r in regions),
            "scans_kept": sum(r.get("scans_kept", 0) for r in regions),
            "granule_scans": sum(r.get("granule_scans", 0) for r in regions),
        }
    }


def region_sentence(report: Mapping[str, Any]) -> str:
    """The region's sentence, as "Region box ...: 4 catalogued granules cross it; 25 other catalogued granules
    left out (not missing)." ("" for the globe)."""
    region = report.get("region")
    if not region:
        return ""
    inside = region.get("no_scan_inside", 0)
    share = ""
    if region.get("granule_scans"):
        kept = 100.0 * region["scans_kept"] / region["granule_scans"]
        share = f" Their swaths keep {kept:.1f} % of their granules' scans (those touching it)."
    return (
        f"Region {region['description']}: {report['expected_granules']} catalogued granules cross it; "
        f"{region['left_out'] + inside} other catalogued granules left out (not missing"
        + (f"; {inside} of them by their scans, their footprint touching it)." if inside else ").")
        + share
    )


#: Exit status of a run that finished but left catalogued granules unarchived (1 is Snakemake's own failure,
#: 2 a configuration or start-up refusal). Cron, schedulers and ``amsr2flow status`` can rely on it.
EXIT_INCOMPLETE = 3


def run_outcome(run: Mapping[str, Any], accept_missing: Sequence[str], report_path: str) -> tuple[int, list[str]]:
    """The exit status a finished run owes its caller, and the last lines it prints."""
    missing = int(run["missing_granules"])
    damaged = int(run.get("damaged_swaths", 0))
    disagreeing = int(run.get("disagreement_count", 0))
    count_problems = list(run.get("count_problems", []))
    lines = [f"amsr2flow: {region_sentence(run)}"] if run.get("region") else []
    lines.append(
        f"amsr2flow: {run['archived_granules']} of {run['expected_granules']} catalogued granules archived "
        f"({format_rate(run['success_rate_percent'])}); report: {report_path}"
    )
    if not missing and not damaged and not disagreeing and not count_problems:
        return 0, lines
    by_reason = run.get("missing_by_reason", {})
    if missing:
        lines.append(
            f"amsr2flow: {missing} not archived: "
            + "; ".join(f"{n} {k} ({text_of(k)})" for k, n in sorted(by_reason.items()))
        )
    if damaged:
        lines.append(f"amsr2flow: {damaged} damaged swath(s) in the archives; see the report")
    if disagreeing:
        first = (run.get("disagreements") or [{}])[0]
        example = f" (first: {first['granule_id']}: {first['message']})" if first else ""
        lines.append(
            f"amsr2flow: {disagreeing} fact(s) of archived granules disagree between the catalogue, the file names "
            f"and the files{example}; see the report"
        )
    if count_problems:
        lines.append(f"amsr2flow: per-direction counts do not add up: {count_problems[0]}; see the report")
    unaccepted = {k: n for k, n in by_reason.items() if k not in accept_missing}
    if unaccepted or damaged or disagreeing or count_problems:
        hint = "; rerun the same command to retry what can be retried"
        accepted = sorted(set(by_reason) & set(ACCEPTABLE))
        if accepted:
            hint += f"; to accept {', '.join(accepted)} granules, set accept_missing in the configuration"
        lines.append(f"amsr2flow: exit status {EXIT_INCOMPLETE}: not everything catalogued is archived{hint}")
        return EXIT_INCOMPLETE, lines
    lines.append(f"amsr2flow: accepted by accept_missing ({', '.join(sorted(accept_missing))}): exit status 0")
    return 0, lines


# -- rendering ---------------------------------------------------------------------------------------------
def format_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} %"


def year_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# {report_title([report.get('sensor', 'AMSR-2')])}, {report['year']}",
        "",
        f"Archive: `{report['archive']}`",
        "",
        *([region_sentence(report), ""] if report.get("region") else []),
        "| | expected | archived |",
        "|---|---:|---:|",
        f"| all granules | {report['expected_granules']} | {report['archived_granules']} |",
        f"| ascending | {report['orbit_direction']['A']['expected']} | {report['orbit_direction']['A']['archived']} |",
        f"| descending | {report['orbit_direction']['D']['expected']} | {report['orbit_direction']['D']['archived']} |",
        "",
        f"Success rate: **{format_rate(report['success_rate_percent'])}**; "
        f"silent losses: **{report['silent_losses']}**.",
        f"Verification: {report['verification'].get('valid', 0)} valid, {report['verification'].get('damaged', 0)} "
        f"damaged swaths. Parts: {len(report['parts'])}.",
        "",
    ]
    lines += _missing_markdown(report["missing"])
    lines += ["", *_facts_markdown(report.get("disagreements", []), report.get("count_problems", []))]
    lines += ["", "## Per day", "", "| day | expected | archived | A | D |", "|---|---:|---:|---:|---:|"]
    for d in report["days"]:
        lines.append(
            f"| {d['day']} | {d['expected']} | {d['archived']} | "
            f"{d['ascending']['archived']}/{d['ascending']['expected']} | "
            f"{d['descending']['archived']}/{d['descending']['expected']} |"
        )
    return "\n".join(lines) + "\n"


def _missing_markdown(missing: Sequence[Mapping[str, Any]]) -> list[str]:
    if not missing:
        return ["Every catalogued granule is archived."]
    lines = [
        "## Not archived",
        "",
        "| granule | day | reason | attempts | last error | what to do |",
        "|---|---|---|---:|---|---|",
    ]
    for m in missing:
        error = str(m["last_error"]).replace("|", "/")[:160]
        todo = m.get("what_to_do", RETRY_NEXT_RUN)
        lines.append(f"| `{m['granule_id']}` | {m['day']} | {m['reason']} | {m['attempts']} | {error} | {todo} |")
    return lines


def _facts_markdown(disagreements: Sequence[Mapping[str, Any]], count_problems: Sequence[str]) -> list[str]:
    """The cross-checks: catalogue, file names, files and archives agree, or what disagrees."""
    if not disagreements and not count_problems:
        return ["The catalogue, the file names, the files and the archive agree on every archived granule."]
    lines = ["## Facts that disagree", ""]
    if disagreements:
        lines += ["| granule | day | fact | what each source says |", "|---|---|---|---|"]
        for d in disagreements[:MISSING_ROWS_IN_MARKDOWN]:
            said = "; ".join(f"{source}: {value}" for source, value in facts.ordered(d["values"]))
            lines.append(f"| `{d['granule_id']}` | {d['day']} | {d['fact']} | {said} |")
        if len(disagreements) > MISSING_ROWS_IN_MARKDOWN:
            lines.append(f"| ... | | | and {len(disagreements) - MISSING_ROWS_IN_MARKDOWN} more (the JSON has all) |")
    if count_problems:
        lines += ["", *(f"- {c}" for c in count_problems[:MISSING_ROWS_IN_MARKDOWN])]
    return lines


def run_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# {report_title(report.get('sensors', ['AMSR-2']))}, {report['start']} to {report['end']}",
        "",
        f"Status: **{report['status']}**. {report['archived_granules']} of {report['expected_granules']} catalogued "
        f"granules archived ({format_rate(report['success_rate_percent'])}); silent losses: {report['silent_losses']}; "
        f"damaged swaths: {report['damaged_swaths']}"
        + (f"; facts that disagree: {report['disagreement_count']}." if "disagreement_count" in report else "."),
        "",
        *([region_sentence(report), ""] if report.get("region") else []),
        "| year | archive | expected | archived | success | damaged | disagree | parts |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for y in report["years"]:
        lines.append(
            f"| {y['year']} | `{y['archive']}` | {y['expected_granules']} | {y['archived_granules']} | "
            f"{format_rate(y['success_rate_percent'])} | {y['damaged_swaths']} | {y.get('disagreements', '')} | "
            f"{y['parts']} |"
        )
    layout = report.get("remote_layout")
    if layout:
        lines += [
            "",
            f"Remote layout: `{layout['template']}` ({layout['how']}; probe granule `{layout['probe_granule']}`).",
        ]
    lines += ["", *_missing_markdown(report["missing"])]
    if "disagreements" in report:
        lines += ["", *_facts_markdown(report["disagreements"], report.get("count_problems", []))]
        if report.get("disagreement_count", 0) > len(report["disagreements"]):
            lines.append(f"({report['disagreement_count']} in all; the year reports list every one.)")
    if any(m.get("retryable") for m in report["missing"]):
        lines += ["", "Granules marked as retried next run are fetched again by rerunning the same command."]
    return "\n".join(lines) + "\n"


#: Columns of ``granules_<period>.csv``: one row per catalogued granule.
GRANULE_COLUMNS = [
    "granule_id",
    "day",
    "orbit_direction",
    "status",
    "reason_class",
    "reason",
    "attempts",
    "size_bytes",
    "sha256",
    "archive",
    "part",
    "last_error",
]


def granule_table(
    *,
    listing: pd.DataFrame,
    archive_name: str,
    archive_index: pd.DataFrame,
    part_of: Mapping[str, str],
    ledger: Mapping[str, Mapping[str, Any]],
    disagreements: Sequence[Mapping[str, Any]] = (),
) -> pd.DataFrame:
    """Every granule of a year with its status and where it is: the table a researcher loads into pandas.

    ``status`` is ``archived`` or the ledger's word (``absent``, ``invalid``, ``failed``, ``reappeared``);
    ``unaccounted`` where neither says anything. An archived granule whose sources disagree (the report's
    ``disagreements``) has the reason class ``disagreement`` and the disagreements as its ``last_error``.
    ``size_bytes`` and ``sha256`` are the downloaded file's (the archive's record), or the catalogue's size for
    granules not archived. ``attempts`` counts tries over all runs: the ledger's sum for a granule that ever
    failed (a day job keeps an entry for every granule with a failure, resolved once archived, counting the try
    that worked), else 1 for an archived granule (it worked at its first try) and 0 for one never tried. A try
    cut off by a killed job is counted nowhere.
    """
    archived = archive_index.set_index("granule_id") if len(archive_index) else pd.DataFrame()
    disagreeing: dict[str, list[str]] = {}
    for d in disagreements:
        disagreeing.setdefault(str(d["granule_id"]), []).append(str(d["message"]))
    rows = []
    for row in listing.itertuples(index=False):
        entry = ledger.get(row.granule_id) or {}
        error = str(entry.get("last_error", ""))
        attempts = int(entry.get("attempts", 0))
        if row.granule_id in archived.index:
            attempts = max(attempts, 1)
            record = archived.loc[row.granule_id]
            size = int(record["source_size"]) if int(record["source_size"]) >= 0 else int(row.size_bytes or 0)
            status, reason_class, sha = "archived", "", str(record["source_sha256"])
            where, part = archive_name, part_of.get(row.granule_id, "")
            error = "; ".join(disagreeing.get(row.granule_id, []))
            reason_class = Reason.DISAGREEMENT if error else ""
        else:
            status = str(entry.get("status") or Reason.UNACCOUNTED)
            reason_class = str(entry.get("reason_class") or Reason.UNACCOUNTED)
            size, sha, where, part = int(row.size_bytes or 0), "", "", ""
        rows.append(
            {
                "granule_id": row.granule_id,
                "day": row.day,
                "orbit_direction": row.orbit_direction,
                "status": status,
                "reason_class": reason_class,
                "reason": text_of(reason_class) if reason_class else "",
                "attempts": attempts,
                "size_bytes": size,
                "sha256": sha,
                "archive": where,
                "part": part,
                "last_error": error,
            }
        )
    return pd.DataFrame(rows, columns=GRANULE_COLUMNS)


def granule_csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


# -- building from files --------------------------------------------------------------------------------------
def build_year_report(
    *,
    year: int,
    listing_path: Path,
    archive_path: Path,
    parts_dir: Path,
    ledger_dir: Path,
    time_tolerance_s: float = facts.TIME_TOLERANCE_S,
) -> tuple[dict, pd.DataFrame]:
    """Read the listing, verify the archive and its parts, join the ledger: the year's report and its
    per-granule table."""
    from ..formats.archive import Archive
    from ..formats.verify import verify_archive
    from .catalogue import read_listing, read_region_summary

    verification = verify_archive(archive_path)
    with Archive(archive_path) as arch:
        index = arch.index
    parts, part_of = [], {}
    for part in sorted(parts_dir.glob("*.npz")):
        part_check = verify_archive(part)
        parts.append({"name": part.name, "swaths": part_check.swaths, "ok": part_check.ok})
        if part_check.ok:
            with Archive(part) as members:
                part_of.update(dict.fromkeys(members.table["granule_id"].tolist(), part.name))
    listing = read_listing(listing_path)
    ledger = read_ledger(ledger_dir)
    report = year_report(
        year=year,
        listing=listing,
        archive_path=archive_path,
        archive_index=index,
        verification={
            "valid": verification.valid,
            "damaged": len(verification.damaged),
            "ok": verification.ok and all(p["ok"] for p in parts),
            "problems": verification.problems(),
            "parts_swaths": sum(p["swaths"] for p in parts),
        },
        parts=parts,
        ledger=ledger,
        time_tolerance_s=time_tolerance_s,
    )
    region = read_region_summary(listing_path)
    if region is not None:
        report["region"] = {
            "description": region["description"],
            "left_out": int(region["left_out"]),
            "no_scan_inside": len(report["outside_region"]),
            **scans_kept(index),
        }
    table = granule_table(
        listing=listing,
        archive_name=archive_path.name,
        archive_index=index,
        part_of=part_of,
        ledger=ledger,
        disagreements=report["disagreements"],
    )
    return report, table


def _log_text(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        try:
            cache[path] = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            cache[path] = ""
    return cache[path]


def interim_report(plan: RunPlan, *, start: str, end: str) -> dict[str, Any] | None:
    """A run report from what exists after a failed run: listings, archives or swaths, and the ledger.

    Years whose catalogue was not listed yet are named in ``unlisted_years``. Returns ``None`` when nothing
    was listed at all.
    """
    from ..formats.archive import Archive
    from .catalogue import read_listing

    layout = plan.layout
    years, unlisted = [], []
    day_logs: dict[Path, str] = {}
    for year, year_plan in plan.years.items():
        listing_path = layout.year_listing(year, year_plan.period)
        if not listing_path.is_file():
            unlisted.append(year)
            continue
        listing = read_listing(listing_path)
        archive = plan.archive(year)

        def unrecorded(granule_id: str, day: str, year: int = year) -> str:
            # A day job names each granule in its log when it starts on it; a granule its day's logs do not
            # name was not reached (the run stopped first, or the job was killed before its turn).
            logs = [layout.day_job_log(year, day, downloads=downloads) for downloads in (False, True)]
            reached = any(joblog.was_reached(_log_text(p, day_logs), granule_id) for p in logs)
            return Reason.JOB_FAILED if reached else Reason.NOT_ATTEMPTED

        if archive.is_file():
            with Archive(archive) as arch:
                archived = list(arch.index["granule_id"])
        else:
            archived = [
                gid
                for gid, day in zip(listing["granule_id"], listing["day"], strict=True)
                if _is_finished_swath(layout.swath(day, gid))
            ]
        years.append(
            year_report(
                year=year,
                listing=listing,
                archive_path=archive,
                archive_index=pd.DataFrame({"granule_id": archived}),
                verification={"valid": 0, "damaged": 0, "ok": archive.is_file(), "problems": []},
                parts=[],
                ledger=read_ledger(layout.ledger_dir(year)),
                unrecorded=unrecorded,
            )
        )
    if not years:
        return None
    run = run_report(years, start=start, end=end)
    for key in ("disagreement_count", "disagreements", "count_problems"):
        del run[key]  # an interim report has no archive to compare: it says nothing rather than "all agree"
    run["status"] = "interim: the run stopped before its end; rerun the same command to continue"
    run["days_by_year"] = {str(y["year"]): y["days"] for y in years}  # for the page's calendars
    run["unlisted_years"] = unlisted
    return run


def _is_finished_swath(npy_path: Path) -> bool:
    """A swath whose sidecar exists (written last) and which is not a tombstone."""
    from ..formats.swath import is_tombstone

    return npy_path.is_file() and npy_path.with_suffix(".json").is_file() and not is_tombstone(npy_path)
