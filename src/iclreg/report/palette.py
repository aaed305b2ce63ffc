"""The colours iclreg draws with, as plain data (no matplotlib): an analysis may name a series'
colour in a :class:`~iclreg.report.plots.Plot` without importing a drawing module.

Okabe-Ito: blue, vermillion, bluish green, reddish purple, orange, sky blue, black, and grey in
place of its yellow (hard to see as a line on white), as in the R Cookbook's palette (Okabe &
Ito, "Color Universal Design", 2008).
"""

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")

__all__ = ["PALETTE"]
