"""Recommending over one catalogue: what is asked (``query``), everyone's behaviour (``behaviour``), which
items may be candidates (``retrieval``), how a pool is scored and the list chosen (``ranking``), what comes
back (``results``), and the one path that puts them together (``recommender``)."""
