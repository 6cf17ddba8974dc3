# Signal Manager build.  One Makefile; each variant in its own build directory.
#
#   make            build/signal-manager (-O2 -g)
#   make run        install missing packages, build, start on the embedded defaults
#   make test       install missing packages, build, run every test suite
#   make test-asan  the suite under ASan+UBSan (build/asan)
#   make test-tsan  the threaded tests under TSan (build/tsan)
#   V=1             show full command lines

.DEFAULT_GOAL := all
SHELL := /bin/bash

VARIANT ?= release
ifeq ($(VARIANT),release)
  BUILD ?= build
  OPT := -O2 -g
  SANFLAGS :=
else ifeq ($(VARIANT),asan)
  BUILD ?= build/asan
  OPT := -O1 -g -fno-omit-frame-pointer
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(VARIANT),tsan)
  BUILD ?= build/tsan
  OPT := -O1 -g -fno-omit-frame-pointer
  SANFLAGS := -fsanitize=thread
else
  $(error unknown VARIANT=$(VARIANT): use release, asan or tsan)
endif

CC ?= gcc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wundef -Wvla
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS := libuv jansson inih sqlite3 libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Isrc -I$(LLHTTP_INC)
CFLAGS := -std=c11 $(OPT) $(WARN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS := $(PKG_LIBS) -lwslay -lmbedtls -lmbedx509 -lmbedcrypto -lm
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif

# Sources: lib/ is the public protocol library, src/ the server.  New files are
# picked up automatically; src/main.c and src/bench/ are programs, not library.
LIB_SRCS := $(sort $(wildcard lib/*/*.c))
SRV_SRCS := $(sort $(filter-out src/main.c src/bench/%,$(wildcard src/*/*.c)))
LLHTTP_SRCS := api.c http.c llhttp.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
SRV_OBJS := $(SRV_SRCS:%.c=$(BUILD)/%.o)
LLHTTP_OBJS := $(LLHTTP_SRCS:%.c=$(BUILD)/third_party/llhttp/%.o)
LIBSMPROTO := $(BUILD)/libsmproto.a
LIBSM := $(BUILD)/libsm.a
BIN := $(BUILD)/signal-manager

UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_SUPPORT := $(sort $(wildcard tests/unit/support/*.c))
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
UNIT_SUPPORT_OBJS := $(UNIT_SUPPORT:%.c=$(BUILD)/%.o)

.PHONY: all deps deps-test run test test-unit test-integration test-js test-fakes test-e2e test-asan test-tsan \
        format lint clean check-config leakcheck

all: $(BIN)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/%.o: %.c VERSION
	$(call say,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) -DSM_VERSION='"$(VERSION)"' $(CFLAGS) -c $< -o $@

# llhttp's C sources from Debian's node-llhttp, compiled with their own flags.
$(BUILD)/third_party/llhttp/%.o: $(LLHTTP_DIR)/%.c
	$(call say,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c11 $(OPT) $(SANFLAGS) -I$(LLHTTP_INC) -w -c $< -o $@

$(LIBSMPROTO): $(LIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBSM): $(SRV_OBJS) $(LLHTTP_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(LIBSM) $(LIBSMPROTO)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# One cmocka binary per tests/unit/<dir>/test_<module>.c.  The -Wl,--wrap list
# for a test sits in a comment line "WRAP: sym sym" inside the test file.
$(BUILD)/tests/unit/%: tests/unit/%.c $(UNIT_SUPPORT_OBJS) $(LIBSM) $(LIBSMPROTO)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) -Itests/unit $(PKG_CFLAGS) -DSM_VERSION='"$(VERSION)"' $(CFLAGS) \
	    -DSM_SOURCE_DIR='"$(CURDIR)"' \
	    $(foreach s,$(shell sed -n 's/.*WRAP: *\([^*]*\).*/\1/p' $<),-Wl,--wrap=$(s)) \
	    $(LDFLAGS) -o $@ $< $(UNIT_SUPPORT_OBJS) $(LIBSM) $(LIBSMPROTO) $(LDLIBS) -lcmocka

run: deps $(BIN)
	exec $(BIN)

check-config: $(BIN)
	$(BIN) --check-config

test: deps-test
	@$(MAKE) --no-print-directory all test-unit test-fuzz-replay test-integration test-js test-fakes \
	    test-e2e

test-unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

test-integration: $(BIN)
	@SM_BIN=$(CURDIR)/$(BIN) scripts/run-integration.sh

# JavaScript SDK unit tests (node:test, no server).
test-js:
	@node --test tests/js/

# The fake cloud servers' own tests (tests/fakes/README.md): they hold the
# fakes to the documented API contracts the integration tests rely on.
test-fakes:
	@node --test tests/fakes/test/

# Real-browser end-to-end test: headless Chromium drives the demo page.
test-e2e: $(BIN)
	@SM_BIN=$(CURDIR)/$(BIN) node --test tests/e2e/

test-asan: deps-test
	@$(MAKE) --no-print-directory VARIANT=asan all test-unit test-fuzz-replay test-integration test-e2e

test-tsan: deps-test
	@$(MAKE) --no-print-directory VARIANT=tsan all test-unit test-integration

format:
	clang-format -i $(shell git ls-files '*.c' '*.h')

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem -Iinclude -Isrc src lib

clean:
	rm -rf build

# Component makefiles (fuzzing, benchmarks, ...) add their own targets.
include $(sort $(wildcard mk/*.mk))

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)

# valgrind: start -> 1,000 sessions -> SIGTERM, no leaks, no errors.
leakcheck: deps-test $(BIN)
	@SM_BIN=$(CURDIR)/$(BIN) scripts/leakcheck.sh
