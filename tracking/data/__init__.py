"""Datasets: sequences in memory or on disk, benchmark readers, the training input pipeline."""
