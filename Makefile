# lua-gemini development Makefile. The README's commands: `make demo` and `make test`.
LUA        ?= lua5.4
LUA_VERSION = $(shell $(LUA) -e 'print((_VERSION:gsub("Lua ","")))' 2>/dev/null)
ifeq ($(LUA),luajit)
LUA_INC    ?= $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
else
LUA_INC    ?= -I/usr/include/$(LUA)
endif
CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN        = -std=c99 -Wall -Wextra -Werror -pedantic -Wno-overlength-strings
BUILD      ?= build/$(LUA)
CORE        = $(BUILD)/gemini/core.so
SRC         = $(wildcard src/*.c)
HDR         = $(wildcard src/*.h)
BUSTED     ?= busted

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;$(LUA_PATH);;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;$(LUA_CPATH);;

.PHONY: all deps build test demo clean schema rockspec lint docs

all: build

deps:
	@sh tools/deps.sh

build: $(CORE)

$(CORE): $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -shared $(LUA_INC) $(CURL_CFLAGS) -o $@ $(SRC) $(CURL_LIBS)

rockspec:
	$(LUA) tools/gen_rockspec.lua > lua-gemini-scm-1.rockspec

schema:
	$(LUA) tools/gen_schema.lua ../shared/reference/protos > lua/gemini/schema.lua

lint:
	luacheck -q lua spec bin examples tools

test: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory lint
	@sh tools/run-tests.sh $(LUA)

demo: deps
	@$(MAKE) --no-print-directory build
	@sh tools/demo.sh

docs:
	@sh tools/deps.sh docs
	ldoc .
	@sh tools/docs-check.sh

# `make test` also checks that the reference builds without a warning.
test: export EXTRA_SUITES += tools/docs-check.sh

clean:
	rm -rf build

# Further targets live in mk/*.mk, one file per concern (check, portability, bench, docs).
-include $(wildcard mk/*.mk)
