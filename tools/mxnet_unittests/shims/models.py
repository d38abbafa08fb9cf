"""common.py imports `models` (symbolic model definitions used by other test files); empty here."""
