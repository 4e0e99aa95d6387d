"""LLM backends, preference extraction and explanations."""
