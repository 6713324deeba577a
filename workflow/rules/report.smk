# Verification reports: one per year and one for the run (JSON for machines, Markdown and HTML for people).
# The run report is the default target, so it is the last thing a run makes.


rule year_report:
    input:
        listing=lambda wc: year_listing(int(wc.year)),
        archive=lambda wc: year_archive(int(wc.year)),
        parts=path(LAYOUT.parts_dir("{year}")),
        # a recheck may have added reappeared granules to a sealed year's archive
        rechecks=lambda wc: year_recheck(int(wc.year)),
    output:
        json=path(LAYOUT.year_report("{year}", "{period}")),
        markdown=path(LAYOUT.year_report("{year}", "{period}", ".md")),
        granules=report(
            path(LAYOUT.year_granules("{year}", "{period}")),
            caption="../report/granules.rst",
            category="Granule tables",
            labels={"year": "{year}"},
        ),
    log:
        path(LAYOUT.log("reports", "{year}_{period}.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        ledger_dir=lambda wc: path(LAYOUT.ledger_dir(wc.year)),
        year=lambda wc: int(wc.year),
        time_tolerance_s=config["catalogue"]["time_tolerance_s"],
    script:
        "../scripts/report_year.py"


# Figures and map pages: imported by these jobs only (matplotlib, folium), never by day jobs.
rule year_figures:
    input:
        report=path(LAYOUT.year_report("{year}", "{period}")),
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        figures=report(
            directory(path(LAYOUT.figures_dir("{year}", "{period}"))),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"year": "{year}", "figure": "{figure}"},
        ),
    log:
        path(LAYOUT.log("reports", "{year}_{period}_figures.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        # outside the output folder (Snakemake empties that before the job): quick-looks already drawn
        cache_dir=lambda wc: path(LAYOUT.quicklook_cache(wc.year)),
        quicklooks_per_week=config["report"]["quicklooks_per_week"],
        region=REGION_FINGERPRINT,  # quick-looks draw its outline
    script:
        "../scripts/figures.py"


rule day_map:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        page=report(
            path(LAYOUT.map_page("{year}", "{day}")),
            caption="../report/map.rst",
            category="Map pages",
            labels={"day": "{day}"},
        ),
    log:
        path(LAYOUT.log("reports", "{year}_map_{day}.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        region=REGION_FINGERPRINT,  # the page draws its outline
    script:
        "../scripts/day_map.py"


rule year_page:
    input:
        report=path(LAYOUT.year_report("{year}", "{period}")),
        granules=path(LAYOUT.year_granules("{year}", "{period}")),
        figures=lambda wc: year_figure_dirs(int(wc.year)),
        maps=lambda wc: year_map_pages(int(wc.year)),
    output:
        page=report(
            path(LAYOUT.year_report("{year}", "{period}", ".html")),
            caption="../report/year_report.rst",
            category="Reports",
            labels={"report": "year {year}"},
        ),
    log:
        path(LAYOUT.log("reports", "{year}_{period}_page.log")),
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        period=lambda wc: year_period(int(wc.year)),
    script:
        "../scripts/year_page.py"


rule run_report:
    input:
        years=[path(LAYOUT.year_report(y, YEARS[y].period)) for y in YEARS],
        granules=[path(LAYOUT.year_granules(y, YEARS[y].period)) for y in YEARS],
        pages=[path(LAYOUT.year_report(y, YEARS[y].period, ".html")) for y in YEARS],
    output:
        json=RUN_REPORT,
        markdown=path(LAYOUT.run_report(RUN_TAG, ".md")),
        html=report(
            path(LAYOUT.run_report(RUN_TAG, ".html")),
            caption="../report/run_report.rst",
            category="Reports",
            labels={"report": "run"},
        ),
        granules=report(
            path(LAYOUT.run_granules(RUN_TAG)),
            caption="../report/granules.rst",
            category="Granule tables",
            labels={"year": "all"},
        ),
    log:
        path(LAYOUT.log("reports", f"run_{RUN_TAG}.log")),
    # Tiny: joins the year reports; not worth a cluster job.
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        start=config["start"],
        end=config["end"],
        periods={str(y): year_period(y) for y in YEARS},
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
        path(LAYOUT.log("reports", f"run_status_{RUN_TAG}.log")),
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    shell:
        "cp {input} {output} 2> {log}"
