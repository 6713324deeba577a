# Per year: the archive, streamed from the year's swaths in time order, then its parts. A complete year whose
# archive exists is sealed: it lists no swaths, so a rerun of 13 years does not enumerate 140,000 granule jobs.
# Delete a year's archive to rebuild that year (and only that year).


rule year_archive:
    input:
        swaths=lambda wc: year_swaths(wc),
    output:
        archive=f"{OUT}/archives/{{name}}.npz",
    log:
        f"{OUT}/logs/archives/{{name}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    threads: 1
    params:
        channels=config["channels"],
        geolocation=config["geolocation"],
        config_digest=settings.digest(config),
        period=lambda wc: [
            d.isoformat() for d in YEAR_PERIODS[year_of_archive_name(wc.name)]
        ],
    script:
        "../scripts/archive.py"


rule year_parts:
    input:
        archive=lambda wc: year_archive(int(wc.year)),
    output:
        parts=directory(f"{OUT}/parts/{{year}}"),
    log:
        f"{OUT}/logs/parts/{{year}}.log",
    conda:
        "../envs/amsr2flow.yaml"
    params:
        part_size=config["part_size"],
    script:
        "../scripts/parts.py"
