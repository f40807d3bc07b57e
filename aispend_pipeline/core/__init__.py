"""Plain helpers shared by every layer: exact money, HTTP with retries. No Dagster here."""
