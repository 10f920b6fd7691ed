"""Figures (plotly) and self-contained HTML reports."""
