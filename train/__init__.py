"""The bundled trainer: tokenizer, shard loader with mixture sampling, pretraining + annealing."""
