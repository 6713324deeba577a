# Per year: the archive, streamed in time order from the swaths its day records list, then its parts. A complete year whose
# archive exists is sealed: no rule makes its archive (UNSEALED_ARCHIVES), so a rerun of 13 years neither
# enumerates 140,000 granule jobs nor rebuilds anything. Delete a year's archive to rebuild that year (and only
# that year); absent granules of a sealed year that reappear are added by the recheck job (granules.smk).


rule year_archive:
    input:
        days=year_day_records,
    output:
        archive=path(LAYOUT.archive("{name}")),
    log:
        path(LAYOUT.log("archives", "{name}.log")),
    wildcard_constraints:
        name=UNSEALED_ARCHIVES,
    conda:
        "../envs/amsr2flow.yaml"
    threads: 1
    params:
        channels=config["channels"],
        geolocation=config["geolocation"],
        config_digest=settings.digest(config),
        compression=config["archive_compression"],
        period=lambda wc: year_period(year_of_archive_name(wc.name)),
        remove_swaths=lambda wc: PLAN.swaths_are_temporary(
            year_of_archive_name(wc.name)
        ),
    script:
        "../scripts/archive.py"


rule year_parts:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        parts=directory(path(LAYOUT.parts_dir("{year}"))),
    log:
        path(LAYOUT.log("parts", "{year}.log")),
    conda:
        "../envs/amsr2flow.yaml"
    params:
        part_size=config["part_size"],
    script:
        "../scripts/parts.py"
