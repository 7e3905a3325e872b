"""Shared training machinery: data loading, the contamination guard, the training loop, artifacts."""
