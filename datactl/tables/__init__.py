"""Tables as data: row-level diffs, column statistics and row merges of CSV/TSV, JSON Lines and Parquet files."""
