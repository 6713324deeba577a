"""The README's daily-grid figure, from the demo's grids:
``.venv/bin/python tools/grid_figure.py demo/results docs/images``.

Plotted the way the README shows (xarray's own ``.plot`` on the projection coordinates), with the shipped
Natural Earth coastlines projected onto the grid (nothing is downloaded).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

from amsr2flow.formats.coastlines import land_outlines


def main(results: Path, out: Path) -> int:
    paths = sorted((results / "grids").rglob("*_daily_nsidc_north_25km_*.nc"))
    if not paths:
        print(f"no NSIDC north grids under {results}; run `make demo` first", file=sys.stderr)
        return 1
    with xr.open_dataset(paths[min(1, len(paths) - 1)], decode_coords="all") as ds:
        figure, axes = plt.subplots(1, 2, figsize=(11, 7.5), constrained_layout=True)
        to_grid = Transformer.from_crs("EPSG:4326", CRS.from_cf(ds["crs"].attrs), always_xy=True)
        for ax, direction in zip(axes, ("A", "D"), strict=True):
            ds.tb_36_5H.sel(orbit_direction=direction).plot(
                ax=ax, x="x", y="y", vmin=150, vmax=280, cmap="viridis", cbar_kwargs={"shrink": 0.7}
            )
            for ring in land_outlines():
                if ring[:, 1].max() < 25:
                    continue
                x, y = to_grid.transform(ring[:, 0], ring[:, 1])
                ax.plot(x, y, color="white", linewidth=0.4)
            ax.set_xlim(float(ds.x.min()), float(ds.x.max()))
            ax.set_ylim(float(ds.y.min()), float(ds.y.max()))
            ax.set_aspect("equal")
            ax.set_title(f"{ds.attrs['day']} {'ascending' if direction == 'A' else 'descending'}, 36.5 GHz H")
        day = np.datetime_as_string(ds.time.values, "D")
        figure.suptitle(f"Daily mean on the NSIDC polar stereographic north 25 km grid ({day})")
        out.mkdir(parents=True, exist_ok=True)
        figure.savefig(out / "daily_grid.png", dpi=80)
    print(out / "daily_grid.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
