"""Quality classifiers (Wikipedia-reference) and domain/topic labelling."""
