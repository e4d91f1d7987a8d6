"""Product search (query -> ranked products): rankers, protocols and the run pipeline."""
