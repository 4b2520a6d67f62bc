"""Global deduplication: exact and MinHash LSH, over the whole run through Ray's shuffle.
The stages are registered in `curate.pipeline.registry`."""
