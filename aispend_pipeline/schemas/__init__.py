"""Table definitions: one column list per table drives its DuckDB DDL and its pandera schema."""
