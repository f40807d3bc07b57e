"""Manual invoices (seed file) for spend with no billing API: see README.md in this folder."""

from aispend_pipeline.sources.manual_invoices.source import SOURCE, ManualInvoicesResource

__all__ = ["SOURCE", "ManualInvoicesResource"]
