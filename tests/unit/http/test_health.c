/*
 * Unit tests for src/http/health.c: status code per state (200 healthy, 503
 * draining, 503 unhealthy store), and the body parsed back with jansson with
 * every field of DECISIONS §7 and its value; escaping of the instance id;
 * the cap-too-small case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "http/health.h"

#define NOW_MS 1700000000123LL /* 2023-11-14T22:13:20.123Z */

static sm_health_t base(void)
{
    sm_health_t h;
    memset(&h, 0, sizeof h);
    h.draining = false;
    h.store_healthy = true;
    h.active_connections = 12;
    h.registered_clients = 7;
    h.webrtc_sessions = 3;
    h.version = "1.2.3";
    h.instance_id = "host-a:8080";
    h.store_backend = "memory";
    h.now_ms = NOW_MS;
    h.started_at_ms = NOW_MS - 3723456; /* 1 h 2 min 3.456 s */
    return h;
}

static json_t *render(const sm_health_t *h, int *status)
{
    char out[2048];
    size_t len = 12345;
    memset(out, 'Z', sizeof out);
    *status = sm_health_render(h, out, sizeof out, &len);
    assert_true(len > 0);
    assert_int_equal(len, strlen(out)); /* NUL-terminated, len excludes it */
    json_error_t err;
    json_t *j = json_loadb(out, len, 0, &err);
    if (j == NULL)
        fail_msg("health body is not JSON (%s): %s", err.text, out);
    assert_true(json_is_object(j));
    return j;
}

static void check_common(json_t *j, const sm_health_t *h)
{
    json_t *v;
    v = json_object_get(j, "timestamp");
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), "2023-11-14T22:13:20.123Z");
    v = json_object_get(j, "active_connections");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), h->active_connections);
    v = json_object_get(j, "registered_clients");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), (json_int_t)h->registered_clients);
    v = json_object_get(j, "webrtc_sessions");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), (json_int_t)h->webrtc_sessions);
    v = json_object_get(j, "version");
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), h->version);
    v = json_object_get(j, "instance_id");
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), h->instance_id ? h->instance_id : "");
    json_t *store = json_object_get(j, "store");
    assert_true(json_is_object(store));
    v = json_object_get(store, "backend");
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), h->store_backend ? h->store_backend : "none");
    v = json_object_get(store, "healthy");
    assert_true(json_is_boolean(v));
    assert_int_equal(json_is_true(v), h->store_healthy);
    v = json_object_get(j, "uptime_seconds");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), (h->now_ms - h->started_at_ms) / 1000);
}

static void test_healthy(void **state)
{
    (void)state;
    sm_health_t h = base();
    int status = 0;
    json_t *j = render(&h, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "healthy");
    check_common(j, &h);
    assert_int_equal(json_integer_value(json_object_get(j, "uptime_seconds")), 3723);
    json_decref(j);
}

static void test_draining(void **state)
{
    (void)state;
    sm_health_t h = base();
    h.draining = true;
    int status = 0;
    json_t *j = render(&h, &status);
    assert_int_equal(status, 503);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "draining");
    check_common(j, &h);
    json_decref(j);

    /* Draining wins over an unhealthy store in the status text. */
    h.store_healthy = false;
    j = render(&h, &status);
    assert_int_equal(status, 503);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "draining");
    check_common(j, &h);
    json_decref(j);
}

static void test_unhealthy(void **state)
{
    (void)state;
    sm_health_t h = base();
    h.store_healthy = false;
    h.store_backend = "sqlite";
    int status = 0;
    json_t *j = render(&h, &status);
    assert_int_equal(status, 503);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "unhealthy");
    check_common(j, &h);
    json_decref(j);
}

static void test_defaults_and_escaping(void **state)
{
    (void)state;
    sm_health_t h = base();
    h.instance_id = "we\"ird\\id\n\x01";
    h.store_backend = NULL;
    h.active_connections = 0;
    h.registered_clients = UINT64_C(4000000000);
    int status = 0;
    json_t *j = render(&h, &status);
    assert_int_equal(status, 200);
    check_common(j, &h);
    json_decref(j);

    h.instance_id = NULL;
    j = render(&h, &status);
    assert_string_equal(json_string_value(json_object_get(j, "instance_id")), "");
    json_decref(j);
}

static void test_cap_too_small(void **state)
{
    (void)state;
    sm_health_t h = base();
    char small[32];
    size_t len = 999;
    assert_int_equal(sm_health_render(&h, small, sizeof small, &len), 200);
    assert_int_equal(len, 0);
    h.draining = true;
    assert_int_equal(sm_health_render(&h, small, sizeof small, &len), 503);
    assert_int_equal(len, 0);

    /* Exactly the needed size (body + NUL) works; one less does not. */
    char big[2048];
    size_t full = 0;
    sm_health_render(&h, big, sizeof big, &full);
    assert_true(full > 0);
    char *exact = malloc(full + 1);
    assert_non_null(exact);
    assert_int_equal(sm_health_render(&h, exact, full + 1, &len), 503);
    assert_int_equal(len, full);
    assert_string_equal(exact, big);
    assert_int_equal(sm_health_render(&h, exact, full, &len), 503);
    assert_int_equal(len, 0);
    free(exact);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy),       cmocka_unit_test(test_draining),
        cmocka_unit_test(test_unhealthy),     cmocka_unit_test(test_defaults_and_escaping),
        cmocka_unit_test(test_cap_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
