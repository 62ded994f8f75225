"""run_batch.py: one pipeline run per job of a list, on Ray."""
