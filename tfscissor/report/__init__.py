"""The run report: Markdown and HTML tables of every stage, the commands that made each artifact, and plots.

Stages fill in a small data model (:class:`Stage` in the run's ``summary.json``, see
:mod:`tfscissor.report.record`); :func:`write_report` renders whatever stages a run directory has.
"""

from tfscissor.report.crops import load_crop_examples, save_crop_examples
from tfscissor.report.record import METRICS, SUMMARY_FORMAT, Stage, read_run
from tfscissor.report.write import REPORT_HTML, REPORT_MD, write_report

__all__ = [
    "METRICS",
    "REPORT_HTML",
    "REPORT_MD",
    "SUMMARY_FORMAT",
    "Stage",
    "load_crop_examples",
    "read_run",
    "save_crop_examples",
    "write_report",
]
