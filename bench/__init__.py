"""Benchmarks: each module ``bench/<name>.py`` has ``main(argv) -> int``; results go to docs/benchmarks.md."""
