# One job per granule: download (throttled by --resources gportal=N), check, extract the swath, delete the
# HDF5. Complete years keep swaths only until their archive exists (temp), unless keep_swaths is set; the year
# in progress keeps them so that extending `end` rebuilds its archive without downloading it again.


def granule_entry(wildcards):
    """(day, remote path, size) of a granule, from its year's listing."""
    try:
        return year_granules(int(wildcards.year))[wildcards.granule_id]
    except KeyError:
        raise ValueError(
            f"{wildcards.granule_id} is not in the {wildcards.year} listing; "
            "ask for swaths of granules the catalogue lists"
        ) from None


def _granule_rule_params():
    return dict(
        channels=config["channels"],
        geolocation=config["geolocation"],
        remote_path=lambda wc: granule_entry(wc)[1],
        size_bytes=lambda wc: granule_entry(wc)[2],
    )


TEMP_YEARS = (
    "|".join(
        str(y)
        for y in YEAR_PERIODS
        if is_complete_year(y) and not config["keep_swaths"]
    )
    or "none"
)
KEPT_YEARS = (
    "|".join(
        str(y)
        for y in YEAR_PERIODS
        if not (is_complete_year(y) and not config["keep_swaths"])
    )
    or "none"
)


rule granule_temp_swath:
    output:
        npy=temp(f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.npy"),
        sidecar=temp(f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.json"),
    log:
        f"{OUT}/logs/granules/{{year}}/{{day}}/{{granule_id}}.log",
    wildcard_constraints:
        year=TEMP_YEARS,
    resources:
        gportal=1,
    params:
        **_granule_rule_params(),
    script:
        "../scripts/granule.py"


rule granule_kept_swath:
    output:
        npy=f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.npy",
        sidecar=f"{OUT}/swaths/{{year}}/{{day}}/{{granule_id}}.json",
    log:
        f"{OUT}/logs/granules/{{year}}/{{day}}/{{granule_id}}.log",
    wildcard_constraints:
        year=KEPT_YEARS,
    resources:
        gportal=1,
    params:
        **_granule_rule_params(),
    script:
        "../scripts/granule.py"
