"""Scripts that measure and print ratios from one run (`python -m benchmarks.NAME`); nothing imports them."""
