/*
 * /proc readers for signal-bench: a process's CPU time (stat) and resident
 * set (status), and our own CPU time (getrusage).
 */
#include "bench/procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>

/* Read a small /proc file into buf (NUL-terminated). */
static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            close(fd);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

int sm_proc_cpu_us(pid_t pid, uint64_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int rc = read_file(path, buf, sizeof buf);
    if (rc < 0)
        return rc;
    /* The command name (field 2) is in parentheses and may hold spaces:
     * count fields from the last ')'.  After it: state (3) ... utime (14),
     * stime (15). */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -EINVAL;
    p++;
    unsigned long long v[13];
    for (int i = 0; i < 13; i++) {
        while (*p == ' ')
            p++;
        if (i == 0) { /* state: one character */
            v[i] = 0;
            p++;
            continue;
        }
        char *end;
        v[i] = strtoull(p, &end, 10);
        if (end == p)
            return -EINVAL;
        p = end;
    }
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    *out = (uint64_t)(v[11] + v[12]) * 1000000u / (uint64_t)tck;
    return 0;
}

int sm_proc_rss_kib(pid_t pid, uint64_t *out)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int rc = read_file(path, buf, sizeof buf);
    if (rc < 0)
        return rc;
    const char *p = strstr(buf, "\nVmRSS:");
    if (p == NULL)
        return -EINVAL;
    *out = strtoull(p + 7, NULL, 10);
    return 0;
}

uint64_t sm_self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

int sm_sys_busy_us(uint64_t *out)
{
    char buf[4096];
    int rc = read_file("/proc/stat", buf, sizeof buf);
    if (rc < 0)
        return rc;
    if (strncmp(buf, "cpu ", 4) != 0)
        return -EINVAL;
    /* cpu  user nice system idle iowait irq softirq steal guest guest_nice */
    unsigned long long v[8] = {0};
    char *p = buf + 4;
    for (int i = 0; i < 8; i++) {
        char *end;
        v[i] = strtoull(p, &end, 10);
        if (end == p)
            return -EINVAL;
        p = end;
    }
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *out = (uint64_t)busy * 1000000u / (uint64_t)tck;
    return 0;
}
