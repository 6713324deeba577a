"""File formats: L1B granule facts, swaths, archives, trusted legacy archives, and their verification."""
