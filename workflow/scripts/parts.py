"""Parts job: split a year's archive into parts of part_size swaths (adapter; logic in amsr2flow.yearly)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _common import setup_logging  # noqa: E402

from amsr2flow import yearly  # noqa: E402

log = setup_logging(snakemake.log[0])
parts = yearly.build_parts(Path(snakemake.input.archive), Path(snakemake.output.parts), snakemake.params.part_size)
log.info("%d part file(s) in %s", len(parts), snakemake.output.parts)
