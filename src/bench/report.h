/*
 * signal-bench output: a human-readable block and one JSON line per result
 * (the line starts with '{' and holds no newline, so scripts can pick it out
 * with grep '^{').  Main thread only; writes to the stream given.
 */
#ifndef SM_BENCH_REPORT_H
#define SM_BENCH_REPORT_H

#include <stdio.h>

#include "bench/bench.h"

/* The human table for a finished run b (sm_bench_run returned). */
void sm_bench_report_human(FILE *out, const sm_bench_t *b);

/* One JSON object on one line, newline-terminated.  Field reference in
 * docs/performance.md. */
void sm_bench_report_json(FILE *out, const sm_bench_t *b);

#endif
