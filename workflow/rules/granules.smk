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
