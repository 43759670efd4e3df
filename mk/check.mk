# Memory and lifetime safety (issue 5): `make check` and `make fuzz`. Scripts live in tools/check/.
#   make check                       asan, valgrind, stress, threads (each prints "check: NAME passed|failed")
#   make check CHECK_STEPS="asan"    only some steps; also: make check-asan, check-valgrind, check-stress, check-threads
#   make fuzz [FUZZ_SECONDS=60]      every fuzz/fuzz_*.c under libFuzzer+ASan+UBSan on its seed corpus
#   sh tools/check/counts.sh LOG     "P F" from the check: lines of a log, for tools/run-tests.sh
CHECK_STEPS  ?= asan valgrind stress threads
FUZZ_SECONDS ?= 60

.PHONY: check check-asan check-valgrind check-stress check-threads fuzz

check:
	@sh tools/check/run.sh $(CHECK_STEPS)

check-asan check-valgrind check-stress check-threads:
	@sh tools/check/$(@:check-%=%).sh

fuzz:
	@sh tools/check/fuzz.sh $(FUZZ_SECONDS)

# `make test` runs the check steps and a short fuzz run too (issue 5: "a make check target, run by make test");
# tools/run-tests.sh counts each as one suite. `make test CHECK_IN_TEST=0` leaves them out.
CHECK_IN_TEST ?= 1
ifneq ($(CHECK_IN_TEST),0)
test: export EXTRA_SUITES += $(foreach s,$(CHECK_STEPS),tools/check/$(s).sh) tools/check/fuzz.sh
test: export FUZZ_SECONDS = 10
endif
