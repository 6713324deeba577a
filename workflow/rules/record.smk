# The record (record.enabled): every archived swath once in one transactional store, appended after the
# archives (one commit per archive that gained swaths), and the training split's normalisation statistics.
# The store is appended in place, so the job's output is its receipt: Snakemake deletes outputs before a job.


rule record:
    input:
        archives=[year_archive(y) for y in YEARS],
    output:
        receipt=path(LAYOUT.record_receipt()),
    log:
        path(LAYOUT.log("record", "record.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        store=path(LAYOUT.record_store()),
    script:
        "../scripts/record.py"


rule record_statistics:
    input:
        receipt=path(LAYOUT.record_receipt()),
    output:
        statistics=path(LAYOUT.record_statistics()),
    log:
        path(LAYOUT.log("record", "normalisation.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        store=path(LAYOUT.record_store()),
        train=config["record"]["train"],
        channels=config["channels"],
    script:
        "../scripts/record_statistics.py"
