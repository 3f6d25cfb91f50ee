"""Benchmarks: each ``bench_<name>.py`` has ``main(argv)``; ``coilmap bench <name>`` runs it."""
