"""Manual invoices (seed file) for spend with no billing API: see README.md in this folder."""
