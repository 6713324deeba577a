"""Export benchmark: an archive against its Zarr and NetCDF exports and its daily grids, in one run.

    .venv/bin/python benchmarks/bench_export.py              # 2 days of full-size granules (~3 minutes)
    .venv/bin/python benchmarks/bench_export.py --days 1     # quicker

Granules are the local G-Portal's full-size synthetic ones (realistic fields), extracted as a run does
(36.5H and 18.7V with geolocation, and once more with the extra variables land_fraction and earth_incidence),
written as one archive, then exported. Sizes and times are printed per swath and extrapolated to a year
(10,660 swaths: 29.2 a day); ratios are export / archive, measured side by side in this one run. Reading
every swath's 36.5H back is timed from each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

SWATHS_PER_YEAR = 10660


def folder_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def read_times(npz: Path, zarr_store: Path, netcdf_file: Path) -> dict[str, float]:
    """Seconds to read every swath's 36.5H values (raw) from the archive and from each export."""
    import xarray as xr

    from amsr2flow.formats import archive

    def from_archive() -> None:
        with archive.Archive(npz) as arch:
            for i in range(len(arch)):
                arch.read_array(i, "temperature")

    def from_export(path: Path, engine: str) -> None:
        with xr.open_dataset(path, engine=engine, mask_and_scale=False, chunks=None) as ds:
            for i in range(ds.sizes["swath"]):
                ds["tb_36_5H"].isel(swath=i).values  # noqa: B018 - the read is the point

    return {
        "npz": timed(from_archive),
        "zarr": timed(lambda: from_export(zarr_store, "zarr")),
        "netcdf": timed(lambda: from_export(netcdf_file, "h5netcdf")),
    }


def main() -> int:
    from amsr2flow.emulator import orbit, synth
    from amsr2flow.formats import archive, dataset, swath
    from amsr2flow.stages import grid

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_export_"))
    first = date(2020, 1, 1)
    days = [first + timedelta(days=n) for n in range(args.days)]
    specs = [s for d in days for s in orbit.granules_beginning_on(d)]
    granules = work / "granules"
    granules.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        if not (granules / spec.file_name).is_file():
            synth.write_granule(granules / spec.file_name, spec)
    rows = []
    reads: dict[str, dict[str, float]] = {}
    for label, extra in (
        ("36.5H+18.7V, positions", ()),
        ("... + land_fraction, earth_incidence", ("land_fraction", "earth_incidence")),
    ):
        folder = work / ("extra" if extra else "plain")
        paths = []
        extract_s = 0.0
        for spec in specs:
            started = time.perf_counter()
            sw = swath.extract_swath(granules / spec.file_name, ("36.5H", "18.7V"), True, extra_variables=extra)
            extract_s += time.perf_counter() - started
            paths.append(swath.write_swath(sw, folder / "swaths" / f"{sw.granule_id}.npy"))
        npz = folder / "archive.npz"
        npz.unlink(missing_ok=True)
        archive_s = timed(lambda: archive.write_archive(npz, paths))  # noqa: B023 - called at once
        outputs = {}
        for fmt, target in (("zarr", folder / "export.zarr"), ("netcdf", folder / "export.nc")):
            if target.exists():
                import shutil

                shutil.rmtree(target) if target.is_dir() else target.unlink()
            outputs[fmt] = (
                timed(lambda fmt=fmt, target=target, npz=npz: dataset.export_archive(npz, target, fmt)),
                folder_size(target),
            )
        rows.append((label, len(paths), folder_size(npz), archive_s, outputs))
        reads[label] = read_times(npz, folder / "export.zarr", folder / "export.nc")
    grid_dir = work / "grids"
    if grid_dir.exists():  # the year job skips days already gridded: time a fresh one
        import shutil

        shutil.rmtree(grid_dir)
    grid_s = timed(
        lambda: grid.build_year_grids(
            work / "plain" / "archive.npz", days, ["nsidc_north_25km"], ["36.5H", "18.7V"], grid_dir
        )
    )
    grid_bytes = folder_size(grid_dir)
    print(
        f"{len(specs)} full-size synthetic swaths ({args.days} day(s)); "
        f"a year is {SWATHS_PER_YEAR / len(specs):.0f} times as many"
    )
    header = ("content", "format", "size/swath", "size/year", "time/swath", "size ratio", "time ratio")
    print(f"{header[0]:40s} {header[1]:8s} " + " ".join(f"{h:>11s}" for h in header[2:]))
    result = {}

    def line(label: str, fmt: str, size: int, seconds: float, n: int, npz_bytes: int, archive_s: float) -> str:
        per_year_gb = size / n * SWATHS_PER_YEAR / 1e9
        cells = (f"{size / n / 1e6:8.2f} MB", f"{per_year_gb:8.1f} GB", f"{seconds / n:9.3f} s")
        ratios = (f"{size / npz_bytes:11.2f}", f"{seconds / archive_s:11.2f}")
        return f"{label:40s} {fmt:8s} " + " ".join(f"{c:>11s}" for c in cells) + " " + " ".join(ratios)

    for label, n, npz_bytes, archive_s, outputs in rows:
        print(line(label, "npz", npz_bytes, archive_s, n, npz_bytes, archive_s))
        for fmt, (seconds, size) in outputs.items():
            print(line("", fmt, size, seconds, n, npz_bytes, archive_s))
        result[label] = {"swaths": n, "npz_bytes": npz_bytes, "archive_s": archive_s, "exports": outputs}
    for label, seconds in reads.items():
        n = rows[0][1]
        shown = ", ".join(f"{fmt} {t / n * 1000:.1f} ms ({t / seconds['npz']:.2f})" for fmt, t in seconds.items())
        print(f"read 36.5H of every swath, per swath ({label}): {shown}")
    per_day = grid_s / len(days)
    print(
        f"daily grid nsidc_north_25km, 2 channels: {per_day:.1f} s and {grid_bytes / len(days) / 1e6:.1f} MB per day; "
        f"a year: {per_day * 365 / 60:.0f} min, {grid_bytes / len(days) * 365 / 1e9:.2f} GB"
    )
    (work / "bench_export.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
