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
    log:
        f"{OUT}/logs/reports/{{year}}_{{period}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    params:
        ledger_dir=lambda wc: str(LAYOUT.ledger_dir(wc.year)),
        year=lambda wc: int(wc.year),
    script:
        "../scripts/report_year.py"


rule run_report:
    input:
        years=[f"{OUT}/reports/{y}/report_{PERIODS[y]}.json" for y in YEAR_PERIODS],
    output:
        json=RUN_REPORT,
        markdown=RUN_REPORT.replace(".json", ".md"),
        html=RUN_REPORT.replace(".json", ".html"),
    log:
        f"{OUT}/logs/reports/run_{RUN_TAG}.log",
    # Tiny: joins the year reports; not worth a cluster job.
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        start=config["start"],
        end=config["end"],
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
