"""Evaluation harnesses: extraction, and (later) ReDial, MovieLens, sentiment."""
