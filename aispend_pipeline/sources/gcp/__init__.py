"""Google Cloud billing export in BigQuery (Vertex AI, Gemini API)."""
