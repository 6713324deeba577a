"""Screenshots of a run's report pages in headless Chromium, for the docs (README and docs/reports.md).

    .venv/bin/python tools/screenshots.py demo/results docs/images

Needs Chromium (Debian package `chromium`, `.ci/install-browser.sh`) and the `playwright` package (test extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import open_page


def main(results: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    reports = results / "reports"
    pages = {
        "run_report.png": next(reports.glob("run_*.html")),
        "year_report.png": next(reports.glob("*/report_*.html")),
        "day_map.png": next(reports.glob("*/maps/*.html")),
    }
    for name, page in pages.items():
        with open_page(page, width=1280, height=900) as view:
            view.page.screenshot(path=str(out / name), full_page=name == "year_report.png")
            print(f"{out / name}: {page} ({len(view.images)} images, {len(view.failed_requests)} failed requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
