"""Figures and reports. Plot functions take results and return a figure; they compute nothing."""

from .figures import error_curves_figure
from .files import atomic_output_dir, save_figure, write_text

__all__ = ["atomic_output_dir", "error_curves_figure", "save_figure", "write_text"]
from .tables import markdown_table, text_table  # noqa: E402

__all__ += ["markdown_table", "text_table"]
