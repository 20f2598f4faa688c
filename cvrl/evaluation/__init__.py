"""Evaluators of frozen representations: probing, SSM boundaries, retrieval."""
