/* test-redis-cluster.c - key slots as the Redis Cluster specification
 * defines them: CRC16-XMODEM mod 16384, hash tags between the first '{'
 * and the next '}' when not empty. Values checked against CLUSTER KEYSLOT
 * of redis-server 7. */
#include "test.h"

#include "redis-cluster.h"

static unsigned slot(const char *k) { return redis_keyslot(k, strlen(k)); }

int main(int argc, char **argv)
{
    (void)argc;
    CHECK_EQ_U64(slot("123456789"), 0x31c3 % 16384);   /* the specification's check value */
    CHECK_EQ_U64(slot("foo"), 12182);
    CHECK_EQ_U64(slot("somekey"), 11058);
    CHECK_EQ_U64(slot("dati:id"), 2485);
    CHECK_EQ_U64(slot(""), 0);
    /* hash tags */
    CHECK_EQ_U64(slot("{user1000}.following"), slot("user1000"));
    CHECK_EQ_U64(slot("http:{3}"), slot("3"));
    CHECK_EQ_U64(slot("http:{3}"), 1584);
    CHECK_EQ_U64(slot("foo{}{bar}"), 8363);       /* empty first tag: the whole key */
    CHECK_EQ_U64(slot("foo{{bar}}zap"), slot("{bar"));
    CHECK_EQ_U64(slot("foo{bar}{zap}"), slot("bar"));
    CHECK_EQ_U64(slot("foo{bar"), slot("foo{bar"));
    return test_summary(argv[0]);
}
