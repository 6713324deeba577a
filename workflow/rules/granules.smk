# One job per granule: download (throttled by --resources gportal=N), check, extract the swath, delete the
# HDF5. Complete years keep swaths only until their archive exists (temp), unless keep_swaths is set; the year
# in progress keeps them so that extending `end` rebuilds its archive without downloading it again.
# With `transfer_jobs: local` the download (and its integrity check) is its own job on the machine running
# Snakemake, and the swath job only extracts: compute nodes need no internet.


if SPLIT_TRANSFERS:

    rule download_granule:
        output:
            h5=temp(DOWNLOAD_PATTERN),
            record=temp(DOWNLOAD_PATTERN.replace(".h5", ".download.json")),
        log:
            f"{OUT}/logs/downloads/{{year}}/{{day}}/{{granule_id}}.log",
        localrule: True
        conda:
            "../envs/amsr2flow.yaml"
        resources:
            gportal=1,
        params:
            **_granule_rule_params(),
        script:
            "../scripts/granule.py"


rule granule_temp_swath:
    input:
        unpack(granule_inputs),
    output:
        npy=temp(f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.npy"),
        sidecar=temp(f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.json"),
    log:
        f"{OUT}/logs/granules/{{year}}/{{day}}/{{granule_id}}.log",
    wildcard_constraints:
        year=TEMP_YEARS,
    conda:
        "../envs/amsr2flow.yaml"
    resources:
        gportal=0 if SPLIT_TRANSFERS else 1,
    params:
        **_granule_rule_params(),
    script:
        "../scripts/granule.py"


rule granule_kept_swath:
    input:
        unpack(granule_inputs),
    output:
        npy=f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.npy",
        sidecar=f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.json",
    log:
        f"{OUT}/logs/granules/{{year}}/{{day}}/{{granule_id}}.log",
    wildcard_constraints:
        year=KEPT_YEARS,
    conda:
        "../envs/amsr2flow.yaml"
    resources:
        gportal=0 if SPLIT_TRANSFERS else 1,
    params:
        **_granule_rule_params(),
    script:
        "../scripts/granule.py"


# Granules recorded as absent are looked for again (one stat each, no download) once their last look is
# older than catalogue.recheck_absent_after_hours; only years that hold such granules get this job. A granule
# back on the server loses its tombstone, so its granule job runs (the checkpoint re-plans the year). In a
# sealed year, whose other swaths are gone and whose archive no rule makes, this job fetches it and adds it to
# the archive and parts itself; nothing is rebuilt while nothing arrived.
checkpoint recheck_absent:
    output:
        record=f"{OUT}/ledger/{{year}}/rechecks/recheck_{{stamp}}.json",
    log:
        f"{OUT}/logs/rechecks/{{year}}_{{stamp}}.log",
    localrule: True
    conda:
        "../envs/amsr2flow.yaml"
    resources:
        gportal=1,
    params:
        sealed=lambda wc: int(wc.year) in SEALED_YEARS,
        archive=lambda wc: year_archive(int(wc.year)),
        parts=lambda wc: str(LAYOUT.parts_dir(int(wc.year))),
        listing=lambda wc: year_listing(int(wc.year)),
        channels=config["channels"],
        geolocation=config["geolocation"],
        part_size=config["part_size"],
    script:
        "../scripts/recheck.py"
