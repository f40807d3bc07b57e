"""Storage behind one class, so that a warehouse can later replace the embedded DuckDB file."""
