"""The workflow stages, one module per rule file: catalogue, granule, year, report (workflow/rules/*.smk)."""
