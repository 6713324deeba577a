# Daily grids (grid.enabled): per year one job that averages each day's swaths onto the configured grids,
# ascending and descending apart. It reads the year's archive and writes only the days whose set of granules
# changed, so extending the year in progress regrids its new days, not the whole year.


rule year_grids:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        record=f"{OUT}/grids/{{year}}/grids_{{period}}.json",
    log:
        f"{OUT}/logs/grids/{{year}}_{{period}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    params:
        days=lambda wc: [d.isoformat() for d in YEAR_PERIODS[int(wc.year)]],
        grids=config["grid"]["grids"],
        channels=config["grid"]["channels"] or config["channels"],
        format=config["grid"]["format"],
        out_dir=lambda wc: f"{OUT}/grids/{wc.year}",
        prefix=lambda wc: settings.year_mission(config, int(wc.year)).archive_prefix,
    script:
        "../scripts/grids.py"
