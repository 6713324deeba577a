# Verification reports: one per year and one for the run (JSON for machines, Markdown and HTML for people).
# The run report is the default target, so it is the last thing a run makes.


rule year_report:
    input:
        listing=lambda wc: year_listing(int(wc.year)),
        archive=lambda wc: year_archive(int(wc.year)),
        parts=f"{OUT}/parts/{{year}}",
        # a recheck may have added reappeared granules to a sealed year's archive
        rechecks=lambda wc: [t for t in recheck_targets() if f"/ledger/{wc.year}/" in t],
    output:
        json=f"{OUT}/reports/{{year}}/report_{{period}}.json",
        markdown=f"{OUT}/reports/{{year}}/report_{{period}}.md",
        granules=report(
            f"{OUT}/reports/{{year}}/granules_{{period}}.csv",
            caption="../report/granules.rst",
            category="Granule tables",
            labels={"year": "{year}"},
        ),
    log:
        f"{OUT}/logs/reports/{{year}}_{{period}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    params:
        ledger_dir=lambda wc: str(LAYOUT.ledger_dir(wc.year)),
        year=lambda wc: int(wc.year),
        time_tolerance_s=config["catalogue"]["time_tolerance_s"],
    script:
        "../scripts/report_year.py"


# Figures and map pages: imported by these jobs only (matplotlib, folium), never by granule jobs.
rule year_figures:
    input:
        report=f"{OUT}/reports/{{year}}/report_{{period}}.json",
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        figures=report(
            directory(f"{OUT}/reports/{{year}}/figures_{{period}}"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"year": "{year}", "figure": "{figure}"},
        ),
    log:
        f"{OUT}/logs/reports/{{year}}_{{period}}_figures.log",
    conda:
        "../envs/amsr2flow.yaml"
    params:
        # outside the output folder (Snakemake empties that before the job): quick-looks already drawn
        cache_dir=lambda wc: f"{OUT}/reports/{wc.year}/.quicklook_cache",
        quicklooks_per_week=config["report"]["quicklooks_per_week"],
    script:
        "../scripts/figures.py"


rule day_map:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        page=report(
            f"{OUT}/reports/{{year}}/maps/{{day}}.html",
            caption="../report/map.rst",
            category="Map pages",
            labels={"day": "{day}"},
        ),
    log:
        f"{OUT}/logs/reports/{{year}}_map_{{day}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    script:
        "../scripts/day_map.py"


rule year_page:
    input:
        report=f"{OUT}/reports/{{year}}/report_{{period}}.json",
        figures=lambda wc: year_figure_dirs(int(wc.year)),
        maps=lambda wc: year_map_pages(int(wc.year)),
    output:
        page=report(
            f"{OUT}/reports/{{year}}/report_{{period}}.html",
            caption="../report/year_report.rst",
            category="Reports",
            labels={"report": "year {year}"},
        ),
    log:
        f"{OUT}/logs/reports/{{year}}_{{period}}_page.log",
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        period=lambda wc: [d.isoformat() for d in YEAR_PERIODS[int(wc.year)]],
    script:
        "../scripts/year_page.py"


rule run_report:
    input:
        years=[f"{OUT}/reports/{y}/report_{PERIODS[y]}.json" for y in YEAR_PERIODS],
        granules=[f"{OUT}/reports/{y}/granules_{PERIODS[y]}.csv" for y in YEAR_PERIODS],
        pages=[f"{OUT}/reports/{y}/report_{PERIODS[y]}.html" for y in YEAR_PERIODS],
    output:
        json=RUN_REPORT,
        markdown=RUN_REPORT.replace(".json", ".md"),
        html=report(
            RUN_REPORT.replace(".json", ".html"),
            caption="../report/run_report.rst",
            category="Reports",
            labels={"report": "run"},
        ),
        granules=report(
            f"{OUT}/reports/granules_{RUN_TAG}.csv",
            caption="../report/granules.rst",
            category="Granule tables",
            labels={"year": "all"},
        ),
    log:
        f"{OUT}/logs/reports/run_{RUN_TAG}.log",
    # Tiny: joins the year reports; not worth a cluster job.
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        start=config["start"],
        end=config["end"],
        periods={str(y): [d.isoformat() for d in p] for y, p in YEAR_PERIODS.items()},
    script:
        "../scripts/report_run.py"


# Only asked for when the last run report says granules are missing (status_targets): temporary, so it is
# stale on every run and the run reaches finish_run(), which repeats the exit status and its reasons.
rule run_status:
    input:
        RUN_REPORT,
    output:
        temp(RUN_STATUS),
    log:
        f"{OUT}/logs/reports/run_status_{RUN_TAG}.log",
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    shell:
        "cp {input} {output} 2> {log}"
