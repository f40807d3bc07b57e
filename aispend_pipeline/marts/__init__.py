"""What analysts query: daily team rollups and the FOCUS-shaped view."""
