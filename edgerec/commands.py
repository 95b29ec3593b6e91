"""Commands that drive the exporters and benchmarks (export, bench, demo)."""
