# One job per day: its granules over its share of the SFTP sessions (--resources gportal=N caps them; each job
# asks gportal=DAY_JOB_SESSIONS, 1 unless fewer day jobs than N are to run, then N // pending: common.smk),
# each session taking the granules in time order, each granule downloaded, checked, extracted into its own
# swath, its HDF5 deleted. The job's output is the day record (each granule's outcome); the swaths beside it
# are not declared outputs, so a killed day job keeps the granules it finished and the next run fetches only
# the rest. Complete years keep swaths only until their archive exists (the archive job removes them, and the
# day records are temp), unless keep_swaths is set; the year in progress keeps them so that extending `end`
# fetches only the new days.
# With `transfer_jobs: local` the downloads (and their integrity checks) are a day job of their own on the
# machine running Snakemake, and the swath job only extracts: compute nodes need no internet.


if SPLIT_TRANSFERS:

    rule download_day:
        input:
            manifest=day_manifest,
        output:
            downloads=temp(DAY_DOWNLOADS_PATTERN),
        log:
            path(LAYOUT.day_job_log("{year}", "{day}", downloads=True)),
        localrule: True
        conda:
            "../envs/amsr2flow.yaml"
        resources:
            gportal=DAY_JOB_SESSIONS,
        params:
            channels=config["channels"],
            geolocation=config["geolocation"],
            region=REGION_KEY,
        script:
            "../scripts/granules.py"


rule day_kept_swaths:
    input:
        unpack(day_inputs),
    output:
        record=path(LAYOUT.day_record("{day}", "{year}")),
    log:
        path(LAYOUT.day_job_log("{year}", "{day}")),
    wildcard_constraints:
        year=KEPT_YEARS,
    conda:
        "../envs/amsr2flow.yaml"
    resources:
        gportal=0 if SPLIT_TRANSFERS else DAY_JOB_SESSIONS,
    params:
        channels=config["channels"],
        geolocation=config["geolocation"],
        # a rerun trigger: another region or margin crops otherwise (each granule decides whether it must)
        region=REGION_KEY,
    script:
        "../scripts/granules.py"


# Complete years: the same job, its day record temporary (the archive job removes the swaths beside it).
use rule day_kept_swaths as day_temp_swaths with:
    output:
        record=temp(path(LAYOUT.day_record("{day}", "{year}"))),
    wildcard_constraints:
        year=TEMP_YEARS,


# Granules recorded as absent are looked for again (one stat each, no download) once their last look is
# older than catalogue.recheck_absent_after_hours; only years that hold such granules get this job. A granule
# back on the server loses its tombstone and its day record, so its day job runs (the checkpoint re-plans the
# year) and fetches it. In a sealed year, whose other swaths are gone and whose archive no rule makes, this job
# fetches it and adds it to the archive and parts itself; nothing is rebuilt while nothing arrived.
checkpoint recheck_absent:
    output:
        record=path(LAYOUT.recheck_record("{year}", "{stamp}")),
    log:
        path(LAYOUT.log("rechecks", "{year}_{stamp}.log")),
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    resources:
        gportal=1,
    params:
        sealed=lambda wc: int(wc.year) in SEALED_YEARS,
        archive=lambda wc: year_archive(int(wc.year)),
        parts=lambda wc: path(LAYOUT.parts_dir(wc.year)),
        listing=lambda wc: year_listing(int(wc.year)),
        channels=config["channels"],
        geolocation=config["geolocation"],
        part_size=config["part_size"],
    script:
        "../scripts/recheck.py"
