"""Backbones of the Siamese trackers."""
