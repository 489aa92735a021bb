"""The presentation layer of ``latentspectra reproduce``: the paper's figures as PNGs and the report
(Markdown and one self-contained HTML page), drawn and written from plain arrays and a metrics dict."""

from .document import PAPER_NUMBERS, PaperNumber, results_table_markdown, write_report
from .figures import figure2, figure3, figure4, figure5, figure6, figure7, figure8, image_grid, image_rows

__all__ = [
    "PAPER_NUMBERS",
    "PaperNumber",
    "figure2",
    "figure3",
    "figure4",
    "figure5",
    "figure6",
    "figure7",
    "figure8",
    "image_grid",
    "image_rows",
    "results_table_markdown",
    "write_report",
]
