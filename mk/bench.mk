# signal-bench (src/bench/) and `make bench` (scripts/bench.sh): issue 6.
#
#   make                 also builds $(BUILD)/signal-bench
#   make bench           release build, then the full benchmark (server pinned
#                        to core 0, signal-bench to core 1, Node reference peer)
#                        BENCH_SECONDS=10 BENCH_RUNS=3 BENCH_SCENARIOS="rtt ..."
#                        BENCH_OUT=dir keeps the raw results (default: a temp dir)
#
# signal-bench is a program, not library code: the main Makefile leaves
# src/bench/ out of libsm.a.  It links libsmproto (frame codec) and takes the
# few server objects it uses (the JWT signer, sm_xmalloc) from libsm.a.

BENCH_SRCS := $(sort $(wildcard src/bench/*.c))
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
BENCH_BIN := $(BUILD)/signal-bench

.PHONY: bench

all: $(BENCH_BIN)
# tests/integration/bench.test.js runs it next to $(BIN).
test-integration: $(BENCH_BIN)

$(BENCH_BIN): $(BENCH_OBJS) $(LIBSM) $(LIBSMPROTO)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJS) $(LIBSM) $(LIBSMPROTO) $(LDLIBS)

# Benchmarks are only meaningful on the optimised build (-O2 -g).
bench:
ifneq ($(VARIANT),release)
	$(error make bench needs VARIANT=release (sanitizer builds measure the sanitizer))
endif
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BIN)
	@SM_BIN=$(CURDIR)/$(BIN) SM_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) scripts/bench.sh

# Unit tests of signal-bench's pure parts (histogram, /proc readers, frame
# templates): tests/bench/test_*.c, cmocka, linked with the bench objects.
# `make test-unit` runs them too.
BENCH_TEST_SRCS := $(sort $(wildcard tests/bench/test_*.c))
BENCH_TEST_BINS := $(BENCH_TEST_SRCS:%.c=$(BUILD)/%)
BENCH_LIB_OBJS := $(filter-out $(BUILD)/src/bench/main.o,$(BENCH_OBJS))

.PHONY: bench-test
test-unit: bench-test

$(BUILD)/tests/bench/%: tests/bench/%.c $(BENCH_LIB_OBJS) $(LIBSM) $(LIBSMPROTO)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BENCH_LIB_OBJS) \
	    $(LIBSM) $(LIBSMPROTO) $(LDLIBS) -lcmocka

bench-test: $(BENCH_TEST_BINS)
	@scripts/run-unit.sh $(BENCH_TEST_BINS)
