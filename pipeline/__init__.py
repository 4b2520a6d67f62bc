"""Sources, WARC reading, extraction, the stage graph, the shard writer, stats and resume."""
