"""mt-harness: train and score LLM machine-translation methods uniformly."""

__version__ = "0.1.0"
