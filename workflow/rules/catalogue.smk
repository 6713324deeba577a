# One checkpoint per year (not per day): it writes a manifest per day and the year's listing. A checkpoint
# re-evaluates the DAG when it completes; per year that is ~13 times for the full record (docs/design.md).
# Operational settings (endpoints, timeouts, retries) reach scripts through snakemake.config, not params:
# params are rerun triggers, and a new timeout must not re-list or re-download anything.


checkpoint catalogue:
    output:
        listing=path(LAYOUT.year_listing("{year}", "{period}")),
    log:
        path(LAYOUT.log("catalogue", "{year}_{period}.log")),
    # Runs where Snakemake runs: it needs the internet (compute nodes may have none) and little else.
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    params:
        dataset=config["dataset"],
        # a rerun trigger: another region lists other granules (stages/catalogue.py re-asks the catalogue);
        # a sealed year keeps the listing its archive was built from
        region=listing_region,
    script:
        "../scripts/catalogue.py"
