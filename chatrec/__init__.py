"""chatrec: an offline conversational recommender."""
__version__ = "0.1.0"
