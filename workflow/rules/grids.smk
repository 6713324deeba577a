# Daily grids (grid.enabled): per year one job that averages each day's swaths onto the configured grids,
# ascending and descending apart. It reads the year's archive and writes only the days whose set of granules
# changed, so extending the year in progress regrids its new days, not the whole year.


rule year_grids:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        record=path(LAYOUT.grids_record("{year}", "{period}")),
    log:
        path(LAYOUT.log("grids", "{year}_{period}.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        days=lambda wc: year_period(int(wc.year)),
        grids=config["grid"]["grids"],
        channels=config["grid"]["channels"] or config["channels"],
        format=config["grid"]["format"],
        out_dir=lambda wc: path(LAYOUT.grids_dir(wc.year)),
        prefix=lambda wc: YEARS[int(wc.year)].mission.archive_prefix,
        # with a region, each grid holds its rows and columns (a new region makes the files stale)
        crop_to_region=config["grid"]["crop_to_region"] and REGION is not None,
        region=REGION_FINGERPRINT,
    script:
        "../scripts/grids.py"
