/* test-features.c - FLOW_FEATURES: a flow's statistics and their JSON,
 * exactly, for packets whose sizes and times are known; a time that goes
 * backwards is a gap of 0, a gap beyond 2^32 us is clamped, the arrays stop
 * at N, and a reused slot starts afresh. */
#include <stdlib.h>
#include <string.h>

#include "flow-features.h"
#include "outbuf.h"
#include "test.h"

#define MS 1000000ull   /* ns */

static void test_three_packets(void)
{
    struct feature_table t;
    CHECK(features_init(&t, 4, 2) == 0);
    struct flow_features *f = features_of(&t, 3);
    features_reset(&t, f);
    features_update(&t, f, 0, 100, 1000 * MS);
    features_update(&t, f, 1, 1500, 1010 * MS);
    features_update(&t, f, 0, 60, 1030 * MS + 999);   /* gaps truncate to whole us */
    struct outbuf b;
    CHECK(outbuf_init(&b, NULL) == 0);
    CHECK(features_json(&b, &t, f) == 0);
    CHECK_MEM_STR(b.buf, b.len,
                  ",\"features\":{\"splt\":{\"len\":[100,1500],\"dir\":[0,1],\"iat_us\":[0,10000]},"
                  "\"c2s\":{\"packets\":2,\"len_min\":60,\"len_max\":100,\"len_mean\":80.000,"
                  "\"len_std\":20.000,\"iat_min_us\":30000,\"iat_max_us\":30000,"
                  "\"iat_mean_us\":30000.000,\"iat_std_us\":0.000},"
                  "\"s2c\":{\"packets\":1,\"len_min\":1500,\"len_max\":1500,\"len_mean\":1500.000,"
                  "\"len_std\":0.000}}");
    /* the slot's next flow */
    features_reset(&t, f);
    b.len = 0;
    CHECK(features_json(&b, &t, f) == 0);
    CHECK_MEM_STR(b.buf, b.len,
                  ",\"features\":{\"splt\":{\"len\":[],\"dir\":[],\"iat_us\":[]},"
                  "\"c2s\":{\"packets\":0},\"s2c\":{\"packets\":0}}");
    free(b.buf);
    features_fini(&t);
}

static void test_odd_times(void)
{
    struct feature_table t;
    CHECK(features_init(&t, 1, 64) == 0);
    struct flow_features *f = features_of(&t, 0);
    features_update(&t, f, 1, 64, 5000 * MS);
    features_update(&t, f, 1, 64, 4000 * MS);              /* backwards: 0 */
    features_update(&t, f, 1, 64, 4000 * MS + 5000000ull * 1000 * MS);   /* 5e9 s later */
    CHECK_EQ_U64(f->d[1].iat_min, 0);
    CHECK_EQ_U64(f->d[1].iat_max, UINT32_MAX);
    CHECK_EQ_U64(f->splt[64 + 1], 0);
    CHECK_EQ_U64(f->splt[64 + 2], UINT32_MAX);
    CHECK_EQ_U64(f->dirs, 7);
    for (int i = 0; i < 100; i++)
        features_update(&t, f, i & 1, (uint32_t)i, 6000 * MS);
    CHECK_EQ_U64(f->n, 64);
    CHECK_EQ_U64(f->splt[63], 60);   /* packet 63: the 61st of the loop */
    CHECK_EQ_U64(f->d[0].packets + f->d[1].packets, 103);
    CHECK_EQ_U64(f->d[0].len_max, 98);
    features_fini(&t);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_three_packets();
    test_odd_times();
    return test_summary(argv[0]);
}
