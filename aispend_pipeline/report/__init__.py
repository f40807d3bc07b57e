"""The static HTML report analysts and finance open in a browser: no server, no SQL (see report.py)."""

from aispend_pipeline.report.report import REPORT_DAYS, write_report

__all__ = ["REPORT_DAYS", "write_report"]
