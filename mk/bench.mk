# Benchmarks (issue 7): `make bench` runs bench/run, which installs what it needs (Debian, npm),
# starts nginx and the emulator on loopback, runs every case and writes bench/RESULTS.md.
.PHONY: bench
bench:
	@bash bench/run
