"""Per-document filters: language ID, heuristic quality (Gopher, C4, FineWeb), URL, PII.
The stages and their order are registered in `curate.pipeline.registry`."""
