# Portability targets (issue 6): every interpreter, Neovim, and a C host embedding Lua 5.4.
#   make test-all      busted on lua5.1, luajit, lua5.3, lua5.4, then the Neovim test, the embed example and
#                      rock-check;
#                      ends with one "N passed, N failed" line
#   make build-all     gemini.core for every interpreter (build/<lua>/gemini/core.so)
#   make test-nvim     the headless Neovim test alone (needs the luajit build)
#   make test-embed    builds examples/embed (core linked statically) and runs it against the emulator
#   make rock-check    `luarocks make` of the rockspec for 5.1 and 5.4 into a throwaway tree
PORTABLE_LUAS ?= lua5.1 luajit lua5.3 lua5.4

.PHONY: test-all build-all test-nvim test-embed embed rock-check

# `make test` also builds and runs the embed example (tools/run-tests.sh runs EXTRA_SUITES).
test: export EXTRA_SUITES += tools/portable/embed-test.sh

test-all:
	@sh tools/deps.sh all
	@LUAS="$(PORTABLE_LUAS)" MAKE="$(MAKE)" sh tools/portable/test-all.sh

build-all:
	@for l in $(PORTABLE_LUAS); do $(MAKE) --no-print-directory build LUA=$$l || exit 1; done

test-nvim:
	@$(MAKE) --no-print-directory build LUA=luajit
	@sh tools/portable/nvim-test.sh

test-embed embed:
	@sh tools/portable/embed-test.sh

rock-check:
	@sh tools/portable/rock-check.sh
