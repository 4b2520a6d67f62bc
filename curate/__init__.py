"""curate: a pretraining-data curation pipeline on Ray."""

__version__ = "0.1.0"
