"""Experiment drivers: the results table and the studies (scripts, one runner)."""
