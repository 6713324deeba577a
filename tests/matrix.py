"""The configurations users combine, as a pairwise test matrix, and the invariants every run must keep.

Factors: sensor (AMSR2, AMSR-E, both as one record), archive compression (deflate, bzip2, lzma), extra variables
(none, some, all), positions (daily grids, geolocation only, none) and channels (one, several with an 89 GHz one).
The first four are the L9 orthogonal array (every pair of their levels in one of 9 runs); the channel factor
needs a 10th run for each of its levels to meet every level of the others. Figures are drawn in four runs
(grids, no positions, AMSR-E, both sensors): they cost seconds per run.

Every run is checked against sources the product does not compute itself: the manifests, as pandas reads them,
for the orbit directions, times, sizes and the set of granules; the archives' own arrays for the exports and
the grids' sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsr2flow.formats import facts, variables
from amsr2flow.formats.archive import Archive
from amsr2flow.formats.verify import verify_archive
from amsr2flow.mission import MISSIONS

SENSORS: dict[str, tuple[list[str], str, str]] = {
    "amsr2": (["amsr2-l1b"], "2024-01-01", "2024-01-01"),
    "amsre": (["amsre-l1b"], "2004-06-01", "2004-06-01"),  # before AMSR-E's 89 GHz A horn failed
    "both": (["amsre-l1b", "amsr2-l1b"], "2011-10-04", "2012-07-03"),  # the last AMSR-E and the first AMSR2 day
}
VARIABLES = {"none": [], "some": ["land_fraction", "earth_incidence"], "all": list(variables.EXTRA_VARIABLES)}
CHANNELS = {"one": ["36.5H"], "several": ["18.7V", "36.5H", "89.0AH"]}


@dataclass(frozen=True)
class Cell:
    sensor: str
    compression: str
    variables: str
    positions: str  # grids | geolocation | none
    channels: str
    figures: bool = False

    @property
    def name(self) -> str:
        return "-".join((self.sensor, self.compression, self.variables, self.positions, self.channels))

    def config(self) -> dict[str, Any]:
        datasets, start, end = SENSORS[self.sensor]
        cfg: dict[str, Any] = {
            "dataset": datasets,
            "start": start,
            "end": end,
            "channels": CHANNELS[self.channels],
            "geolocation": self.positions != "none",
            "variables": VARIABLES[self.variables],
            "archive_compression": self.compression,
            "report": {"figures": self.figures},
        }
        if self.positions == "grids":
            grid = "ease2_global_25km" if self.sensor == "amsr2" and self.channels == "one" else "nsidc_north_25km"
            cfg["grid"] = {"enabled": True, "grids": [grid]}
        return cfg


CELLS = [
    Cell("amsr2", "deflate", "none", "grids", "one", figures=True),
    Cell("amsr2", "bzip2", "some", "geolocation", "one"),
    Cell("amsr2", "lzma", "all", "none", "one", figures=True),
    Cell("amsre", "deflate", "some", "none", "several"),
    Cell("amsre", "bzip2", "all", "grids", "several", figures=True),
    Cell("amsre", "lzma", "none", "geolocation", "one"),
    Cell("both", "deflate", "all", "geolocation", "several", figures=True),
    Cell("both", "bzip2", "none", "none", "one"),
    Cell("both", "lzma", "some", "grids", "several"),
    Cell("amsr2", "deflate", "none", "grids", "several"),
]


def uncovered_pairs(cells: list[Cell]) -> list[tuple[str, str, str, str]]:
    """Pairs of factor levels that no cell combines (the matrix is pairwise when this is empty)."""
    levels = {
        "sensor": list(SENSORS),
        "compression": ["deflate", "bzip2", "lzma"],
        "variables": list(VARIABLES),
        "positions": ["grids", "geolocation", "none"],
        "channels": list(CHANNELS),
    }
    names = list(levels)
    missing = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for x in levels[a]:
                for y in levels[b]:
                    if not any(getattr(c, a) == x and getattr(c, b) == y for c in cells):
                        missing.append((a, x, b, y))
    return missing


# -- the invariants -----------------------------------------------------------------------------------------
def manifests(results: Path) -> pd.DataFrame:
    """Every catalogue record of the run, as pandas reads the day manifests (times kept as text)."""
    paths = sorted(p for p in (results / "manifests").rglob("*.csv") if p.stem[:4].isdigit() and len(p.stem) == 10)
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths], ignore_index=True)


def check_archives_against_the_catalogue(cell: Cell, results: Path) -> list[Path]:
    """Every catalogued granule archived once, with the catalogue's orbit direction, times and size; variables,
    channels and compression as configured; archives and parts verified against the manifests."""
    listed = manifests(results).set_index("granule_id")
    archives = sorted((results / "archives").glob("*.npz"))
    assert archives, "no archive"
    seen: list[str] = []
    for path in archives:
        with Archive(path) as archive:
            index = archive.index
            assert archive.provenance["member_compression"].startswith(cell.compression)
            assert archive.channels == tuple(CHANNELS[cell.channels])
            table = archive.table
        prefix = path.name.split("_", 1)[0]
        assert {str(g)[:6] for g in table["granule_id"]} == {
            m.name_prefix for m in MISSIONS.values() if m.archive_prefix == prefix
        }
        for row in table:
            gid = str(row["granule_id"])
            record = listed.loc[gid]
            assert str(row["orbit_type"]) == record["orbit_direction"] in ("A", "D"), gid
            assert str(row["scan_start_utc"]) == record["begin_utc"], gid
            assert str(row["scan_end_utc"]) == record["end_utc"], gid
            assert int(row["source_size"]) == int(record["size_bytes"]), gid
            assert str(row["variables"]) == ",".join(
                v for v in variables.EXTRA_VARIABLES if v in VARIABLES[cell.variables]
            )
        assert list(index["orbit_type"]) == [str(o) for o in table["orbit_type"]]
        seen += [str(g) for g in table["granule_id"]]
    assert sorted(seen) == sorted(listed.index), "every catalogued granule archived, once"
    records = facts.read_catalogue_records(
        p for p in (results / "manifests").rglob("*.csv") if p.stem[:4].isdigit() and len(p.stem) == 10
    )
    for path in [*archives, *sorted((results / "parts").rglob("*.npz"))]:
        report = verify_archive(path, catalogue=records, catalogue_source="the manifests")
        assert report.ok, report.summary()
    run = json.loads(next((results / "reports").glob("run_*.json")).read_text())
    assert run["status"] == "complete" and run["disagreement_count"] == 0 and not run["count_problems"]
    return archives


def check_grids(cell: Cell, results: Path) -> None:
    """Every day's grid holds finite cells for both passes in every channel the sensor measured that day, made
    from the granules it names."""
    if cell.positions != "grids":
        assert not (results / "grids").exists()
        return
    import xarray as xr

    files = sorted((results / "grids").rglob("*_daily_*.nc"))
    assert len(files) == len(SENSORS[cell.sensor][0])  # one day per sensor, one grid
    for path in files:
        with xr.open_dataset(path) as grid:
            ids = grid.attrs["granule_ids"].split(",")
            assert int(grid.attrs["granules_used"]) == len(ids) >= 28
            mission = next(m for m in MISSIONS.values() if m.name_prefix == ids[0][:6])
            day = pd.Timestamp(grid.attrs["day"]).date()
            for channel in CHANNELS[cell.channels]:
                values = grid[f"tb_{channel.replace('.', '_')}"]
                for direction in ("A", "D"):
                    finite = int(values.sel(orbit_direction=direction).notnull().sum())
                    if channel in mission.lost_channels_on(day):
                        assert finite == 0
                    else:
                        assert finite > 0, (path.name, channel, direction)


def check_exports(cell: Cell, archives: list[Path], out: Path) -> None:
    """The archives exported as one NetCDF equal them: raw values, orbit directions, times, every variable."""
    import xarray as xr

    from amsr2flow import cli

    target = out / "export.nc"
    assert cli.main(["export", *map(str, archives), "--to", "netcdf", "-o", str(target)]) == 0
    rows = []
    for path in archives:
        with Archive(path) as archive:
            rows += [(str(m["scan_start_utc"]), path, i) for i, m in enumerate(archive.table)]
    rows.sort()
    with xr.open_dataset(target, mask_and_scale=False) as exported:
        assert exported.sizes["swath"] == len(rows)
        directions = [str(d) for d in exported["orbit_direction"].values]
        for position in (0, len(rows) - 1):
            _, path, i = rows[position]
            with Archive(path) as archive:
                swath = archive[i]
                assert directions[position] == swath.metadata.orbit_type
                scans = swath.metadata.shape[0]
                for channel in CHANNELS[cell.channels]:
                    got = exported[f"tb_{channel.replace('.', '_')}"].isel(swath=position).values[:scans]
                    np.testing.assert_array_equal(got, swath[channel])
                for name in VARIABLES[cell.variables]:
                    got = exported[name].isel(swath=position).values[:scans]
                    np.testing.assert_array_equal(got.reshape(swath[name].shape), swath[name])
        assert sorted(set(directions)) == ["A", "D"]


def check_figures(cell: Cell, results: Path) -> None:
    """Figures that show something: every PNG has more than one colour, one sample of each direction per year."""
    import matplotlib.image

    folders = sorted((results / "reports").glob("*/figures_*"))
    if not cell.figures:
        assert not folders
        return
    assert len(folders) == len(SENSORS[cell.sensor][0])
    for folder in folders:
        manifest = json.loads((folder / "figures.json").read_text())
        assert sorted(q["orbit_direction"] for q in manifest["quicklooks"]) == ["A", "D"]
        assert {f["kind"] for f in manifest["figures"]} == {"daily_counts", "histograms"}
        for png in sorted(folder.glob("*.png")):
            pixels = matplotlib.image.imread(png)
            assert pixels.std() > 0.01, png
