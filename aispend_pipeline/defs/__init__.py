"""The Dagster layer: assets per layer, resources, checks and schedules. Logic lives outside it."""
