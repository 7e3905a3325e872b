"""Metrics. Each wraps a reference library (sacrebleu, rouge-score, COMET) and reports its settings."""
