"""Evaluation harnesses, each through the product's own path: preference extraction (``extraction``), requests
with checkable constraints (``requests``), ReDial recommendation and sentiment (``redial``), learned weights by
cross-validation on ReDial (``tuning``) and MovieLens next-item (``movielens``)."""
