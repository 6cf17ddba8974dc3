# Fuzzing: libFuzzer targets built with clang, and their corpora replayed with
# the normal compiler.  Included by the Makefile; see tests/fuzz/README.md.
#
#   make fuzz [FUZZ_SECONDS=10] [FUZZ_TARGETS="frame ws"] [FUZZ_JOBS=1]
#                        build build/fuzz/fuzz_<target> (clang, ASan+UBSan,
#                        -fsanitize=fuzzer) and run each for FUZZ_SECONDS
#   make fuzz-build      only build them
#   make fuzz-ci         every target for FUZZ_CI_SECONDS (CI)
#   make test-fuzz-replay  build $(BUILD)/tests/fuzz/fuzz_<target> with $(CC)
#                        and tests/fuzz/standalone.c, run every corpus file
#
# New inputs libFuzzer finds go to build/fuzz/corpus/<target>/ (never into the
# repository); crashes to build/fuzz/artifacts/<target>/.

.PHONY: fuzz fuzz-build fuzz-ci test-fuzz-replay

FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SECONDS ?= 10
FUZZ_CI_SECONDS ?= 15
FUZZ_JOBS ?= 1
FUZZ_CC ?= clang
FUZZ_DIR := build/fuzz

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer $(WARN) -pthread -MMD -MP
FUZZ_DEFS := -DSM_VERSION='"$(VERSION)"'

FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_SRV_OBJS := $(SRV_SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_LLHTTP_OBJS := $(LLHTTP_SRCS:%.c=$(FUZZ_DIR)/third_party/llhttp/%.o)
FUZZ_LIBSM := $(FUZZ_DIR)/libsm.a
FUZZ_LIBSMPROTO := $(FUZZ_DIR)/libsmproto.a
FUZZ_ALL := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS := $(FUZZ_ALL:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_REPLAY_BINS := $(FUZZ_ALL:%=$(BUILD)/tests/fuzz/fuzz_%)

# Library code: instrumented for coverage (fuzzer-no-link) and sanitizers.
$(FUZZ_LIB_OBJS) $(FUZZ_SRV_OBJS): $(FUZZ_DIR)/%.o: %.c VERSION
	$(call say,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_DEFS) $(FUZZ_CFLAGS) \
	    -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

$(FUZZ_LLHTTP_OBJS): $(FUZZ_DIR)/third_party/llhttp/%.o: $(LLHTTP_DIR)/%.c
	$(call say,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -std=c11 -O1 -g -I$(LLHTTP_INC) -w -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
	    -c $< -o $@

$(FUZZ_LIBSMPROTO): $(FUZZ_LIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_LIBSM): $(FUZZ_SRV_OBJS) $(FUZZ_LLHTTP_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIBSM) \
                                  $(FUZZ_LIBSMPROTO)
	$(call say,LD,$@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_DEFS) $(FUZZ_CFLAGS) \
	    -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_LIBSM) $(FUZZ_LIBSMPROTO) $(LDLIBS)

# The same targets with the normal compiler and the replay driver; under
# VARIANT=asan they replay with sanitizers.
$(FUZZ_REPLAY_BINS): $(BUILD)/tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/standalone.c \
                                                 tests/fuzz/fuzz.h $(LIBSM) $(LIBSMPROTO)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_DEFS) $(CFLAGS) $(LDFLAGS) -o $@ \
	    tests/fuzz/standalone.c $< $(LIBSM) $(LIBSMPROTO) $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

# Both install what they need first (clang and its libFuzzer runtime).
fuzz:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh run $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-ci:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh run $(FUZZ_DIR) $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS)

test-fuzz-replay: $(FUZZ_REPLAY_BINS)
	@scripts/fuzz.sh replay $(BUILD)/tests/fuzz $(FUZZ_ALL)

# With BUILD=build the Makefile's own -include already covers build/fuzz.
ifneq ($(BUILD),build)
-include $(shell find $(FUZZ_DIR) -name '*.d' -type f 2>/dev/null)
endif
