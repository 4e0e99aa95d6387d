"""Reproducible builders for the data files shipped in ``data/``."""
