/*
 * signal-bench process accounting: CPU time and resident memory of another
 * process (the server under test, from /proc) and of ourselves.
 *
 * The server's CPU time per operation is the figure that travels between
 * machines: it is utime + stime from /proc/<pid>/stat (all threads, clock
 * ticks, converted to microseconds), differenced over the measured window.
 *
 * Stateless; any thread.  Every function returns 0 or a negative errno-style
 * value (-ENOENT when the process is gone, -EINVAL when the file did not
 * parse); outputs are untouched on error.
 */
#ifndef SM_BENCH_PROCSTAT_H
#define SM_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* utime + stime of process pid, in microseconds (tick resolution, usually
 * 10 ms: measure over seconds). */
int sm_proc_cpu_us(pid_t pid, uint64_t *out);

/* VmRSS of process pid, in KiB. */
int sm_proc_rss_kib(pid_t pid, uint64_t *out);

/* Our own user + system CPU time (getrusage), microseconds. */
uint64_t sm_self_cpu_us(void);

/* Busy time of the whole machine, all cores (user + nice + system + irq +
 * softirq + steal from the "cpu" line of /proc/stat), microseconds.  Minus
 * the server's and our own CPU over the same window it shows how much else
 * ran during a measurement (other processes, kernel threads). */
int sm_sys_busy_us(uint64_t *out);

#endif
