"""Datasets for the milestones (work in progress)."""
