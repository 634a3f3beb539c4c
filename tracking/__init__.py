"""Shared core of the tracking library: boxes, crops, data, training loop, evaluation."""
