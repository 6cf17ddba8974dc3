# make soak (scripts/soak.sh, docs/soak.md): issue 6, item 6.  Not in CI.
#
#   make soak            release build, then SOAK_SECONDS (600) of mixed
#                        signal-bench load against one server (io_threads=2
#                        workers=2) with connections coming and going; fails
#                        when RSS or fds grow, when fds do not return to the
#                        idle baseline, on any error, or on an unclean stop
#   SOAK_SECONDS=60 SOAK_WARMUP=15 make soak   a one-minute check of the script
#   SOAK_OUT=dir make soak                      keep samples.csv, logs, summary
#
# $(BENCH_BIN) comes from mk/bench.mk.

.PHONY: soak

# RSS is the figure: only the optimised build (sanitizers keep shadow memory
# and quarantines that grow by design).
soak:
ifneq ($(VARIANT),release)
	$(error make soak needs VARIANT=release (sanitizer builds grow memory by design))
endif
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BIN) $(BENCH_BIN)
	@SM_BIN=$(CURDIR)/$(BIN) SM_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) scripts/soak.sh
