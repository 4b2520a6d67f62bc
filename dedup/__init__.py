"""Global deduplication over the whole run through keyed layers of Ray tasks: exact and MinHash
LSH (`stages`), paragraph / line (`paragraph`), semantic (`semantic`), and against earlier runs
(`earlier`). The stages are registered in `curate.pipeline.registry`."""
