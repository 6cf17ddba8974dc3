/*
 * signal-bench result printing: the human table and the JSON line (see
 * report.h).  Latencies are kept in nanoseconds and printed in
 * microseconds; CPU time per operation is in microseconds.
 */
#include "bench/report.h"

#include <inttypes.h>

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* JSON string body: ids, labels and error names are plain ASCII, but quote
 * and control characters are escaped all the same. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static double per_op(double cpu_us, uint64_t ops)
{
    return ops ? cpu_us / (double)ops : 0;
}

/* CPU time over the measured window as a number of busy cores. */
static double cores(const sm_bench_result_t *r, double cpu_us)
{
    return r->seconds > 0 ? cpu_us / 1e6 / r->seconds : 0;
}

/* Cores busy with neither the server nor signal-bench during the window. */
static double other_cores(const sm_bench_result_t *r)
{
    double other = r->sys_busy_us - r->client_cpu_us - (r->have_server_cpu ? r->server_cpu_us : 0);
    return other > 0 ? cores(r, other) : 0;
}

static double rss_per_conn(const sm_bench_t *b)
{
    const sm_bench_result_t *r = &b->res;
    if (!r->have_rss || r->clients_ready == 0 || r->rss_after_kib < r->rss_before_kib)
        return 0;
    return (double)(r->rss_after_kib - r->rss_before_kib) / (double)r->clients_ready;
}

void sm_bench_report_human(FILE *out, const sm_bench_t *b)
{
    const sm_bench_opts_t *o = b->o;
    const sm_bench_result_t *r = &b->res;
    const sm_bench_hist_t *h = &b->hist;
    fprintf(out, "== %s  %s:%d  %d %s", b->sc->name, o->host, o->port, o->conns,
            b->sc->no_setup ? "handshakes in flight" : "clients");
    if (!b->sc->idle && !b->sc->no_setup)
        fprintf(out, ", %d in flight", o->inflight);
    if (b->sc->rooms)
        fprintf(out, ", rooms of %d", o->room_size);
    if (o->rate > 0)
        fprintf(out, ", offered %.0f/s (every %d us)", o->rate, o->tick_us);
    if (o->binary)
        fprintf(out, ", binary");
    fprintf(out, "%s%s\n", o->label ? "  " : "", o->label ? o->label : "");
    if (b->sc->idle) {
        fprintf(out, "  connections set up  %u of %d in %.2f s  (%.0f %s)\n", r->clients_ready,
                o->conns, r->seconds, r->throughput, b->sc->unit);
    } else {
        fprintf(out, "  throughput          %.0f %s  (%" PRIu64 " %ss in %.2f s, warm-up %.1f s)\n",
                r->throughput, b->sc->unit, r->ops, b->sc->op_name, r->seconds, o->warmup);
    }
    if (b->sc->rooms && r->seconds > 0)
        fprintf(out, "  rounds              %.0f rounds/s\n", (double)r->extra_ops / r->seconds);
    fprintf(out,
            "  latency (us)        p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%" PRIu64
            " samples)\n",
            us(sm_bench_hist_quantile(h, 0.5)), us(sm_bench_hist_quantile(h, 0.99)),
            us(sm_bench_hist_quantile(h, 0.999)), us(h->max), h->count);
    if (r->have_server_cpu)
        fprintf(out, "  server CPU          %.2f us per %s  (%.2f cores)\n",
                per_op(r->server_cpu_us, r->ops), b->sc->op_name, cores(r, r->server_cpu_us));
    fprintf(out, "  signal-bench CPU    %.2f us per %s  (%.2f cores)\n",
            per_op(r->client_cpu_us, r->ops), b->sc->op_name, cores(r, r->client_cpu_us));
    if (r->have_sys_busy && r->seconds > 0)
        fprintf(out,
                "  machine busy        %.2f cores, of which %.2f neither server nor signal-bench\n",
                cores(r, r->sys_busy_us), other_cores(r));
    if (b->sc->idle && r->have_rss)
        fprintf(out,
                "  server RSS          %" PRIu64 " KiB -> %" PRIu64
                " KiB: %.2f KiB per connection\n",
                r->rss_before_kib, r->rss_after_kib, rss_per_conn(b));
    fprintf(out, "  errors              %" PRIu64, r->errors);
    for (unsigned i = 0; i < r->nerrkinds; i++)
        fprintf(out, "%s%s: %" PRIu64, i ? ", " : "  (", r->errkinds[i].name, r->errkinds[i].count);
    fprintf(out, "%s\n", r->nerrkinds ? ")" : "");
    if (r->stop_404)
        fprintf(out,
                "  ERROR 404 at stop   %" PRIu64 "  (SIGNALs to clients that had already closed)\n",
                r->stop_404);
}

void sm_bench_report_json(FILE *out, const sm_bench_t *b)
{
    const sm_bench_opts_t *o = b->o;
    const sm_bench_result_t *r = &b->res;
    const sm_bench_hist_t *h = &b->hist;
    fprintf(out, "{\"scenario\":\"%s\"", b->sc->name);
    if (o->label) {
        fputs(",\"label\":", out);
        json_str(out, o->label);
    }
    fprintf(out, ",\"params\":{\"host\":");
    json_str(out, o->host);
    fprintf(out,
            ",\"port\":%d,\"connections\":%d,\"inflight\":%d,\"duration_s\":%.3f,"
            "\"warmup_s\":%.3f,\"concurrency\":%d,\"auth\":\"%s\",\"payload\":\"%s\","
            "\"src_addrs\":%d",
            o->port, o->conns, o->inflight, o->duration, o->warmup, o->concurrency,
            o->jwt_secret ? "jwt" : "token", o->binary ? "binary" : "json",
            o->src_addrs > 1 ? o->src_addrs : 1);
    if (b->sc->rooms)
        fprintf(out, ",\"room_size\":%d", o->room_size);
    if (o->rate > 0)
        fprintf(out, ",\"rate\":%.0f,\"tick_us\":%d", o->rate, o->tick_us);
    fprintf(out,
            "},\"clients_ready\":%u,\"ops\":%" PRIu64 ",\"seconds\":%.4f,"
            "\"throughput\":%.1f,\"unit\":\"%s\"",
            r->clients_ready, r->ops, r->seconds, r->throughput, b->sc->unit);
    fprintf(out,
            ",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
            "\"samples\":%" PRIu64,
            us(sm_bench_hist_quantile(h, 0.5)), us(sm_bench_hist_quantile(h, 0.99)),
            us(sm_bench_hist_quantile(h, 0.999)), us(h->max), h->count);
    if (b->sc->rooms)
        fprintf(out, ",\"rounds\":%" PRIu64, r->extra_ops);
    fprintf(out, ",\"errors\":%" PRIu64 ",\"error_detail\":{", r->errors);
    for (unsigned i = 0; i < r->nerrkinds; i++) {
        if (i)
            fputc(',', out);
        json_str(out, r->errkinds[i].name);
        fprintf(out, ":%" PRIu64, r->errkinds[i].count);
    }
    fputc('}', out);
    fprintf(out, ",\"stop_404\":%" PRIu64, r->stop_404);
    if (r->have_server_cpu)
        fprintf(out,
                ",\"server_cpu_us\":%.0f,\"server_cpu_us_per_op\":%.3f,"
                "\"server_cpu_cores\":%.3f",
                r->server_cpu_us, per_op(r->server_cpu_us, r->ops), cores(r, r->server_cpu_us));
    fprintf(out, ",\"client_cpu_us_per_op\":%.3f,\"client_cpu_cores\":%.3f",
            per_op(r->client_cpu_us, r->ops), cores(r, r->client_cpu_us));
    if (r->have_sys_busy && r->seconds > 0)
        fprintf(out, ",\"machine_busy_cores\":%.3f,\"other_busy_cores\":%.3f",
                cores(r, r->sys_busy_us), other_cores(r));
    if (b->sc->idle && r->have_rss)
        fprintf(out,
                ",\"rss_before_kib\":%" PRIu64 ",\"rss_after_kib\":%" PRIu64
                ",\"rss_per_conn_kib\":%.3f",
                r->rss_before_kib, r->rss_after_kib, rss_per_conn(b));
    fprintf(out,
            ",\"client_io\":{\"writes\":%" PRIu64 ",\"queued_writes\":%" PRIu64
            ",\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64 "}}\n",
            r->io.writes, r->io.queued, r->io.bytes_out, r->io.bytes_in);
}
