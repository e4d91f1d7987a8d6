"""recbench: config-driven, reproducible benchmarks for recommendation and product search."""

__version__ = "0.1.0"
