"""One module per benchmark; each defines `BENCHMARK` (a vpd_core.data.registry.Benchmark entry)."""
