/* requests.c - a dati analyzer in C with hiredis: subscribes to a filter's
 * channel and the session channel, reads each record's hash, and prints
 * requests and sessions per period and the hosts seen.
 *
 *   cc -O2 requests.c -lhiredis -o requests
 *   ./requests -s /tmp/redis.sock -c http [-a password] [-S dati:sessions] [-p 10] [-i 2]
 *
 * -i N ends after N seconds without a message and prints the totals. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static redisContext *connect_to(const char *sock, const char *password)
{
    redisContext *c = redisConnectUnix(sock);
    if (!c || c->err) {
        fprintf(stderr, "requests: cannot connect to %s: %s\n", sock, c ? c->errstr : "no memory");
        exit(1);
    }
    if (password) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "requests: AUTH refused\n");
            exit(1);
        }
        freeReplyObject(r);
    }
    return c;
}

int main(int argc, char **argv)
{
    const char *sock = "/tmp/redis.sock", *channel = "http", *sessions = "dati:sessions";
    const char *password = NULL;
    double period = 10, idle_exit = 0;
    for (int o; (o = getopt(argc, argv, "s:c:S:a:p:i:")) != -1;) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'c': channel = optarg; break;
        case 'S': sessions = optarg; break;
        case 'a': password = optarg; break;
        case 'p': period = atof(optarg); break;
        case 'i': idle_exit = atof(optarg); break;
        default: return 2;
        }
    }
    redisContext *sub = connect_to(sock, password), *hashes = connect_to(sock, password);
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s %s", channel, sessions);
    freeReplyObject(r);
    for (int i = 0; i < 1; i++) {   /* the second subscription confirmation */
        redisGetReply(sub, (void **)&r);
        freeReplyObject(r);
    }
    struct timeval tv = {0, 200000};
    redisSetTimeout(sub, tv);   /* so that periods and idle-exit run while quiet */
    printf("subscribed to %s and %s\n", channel, sessions);
    fflush(stdout);

    unsigned long requests = 0, nsessions = 0, total_r = 0, total_s = 0, with_host = 0;
    double last_report = now(), last_message = now();
    for (;;) {
        r = NULL;
        if (redisGetReply(sub, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_ARRAY &&
            r->elements == 3) {
            last_message = now();
            if (strcmp(r->element[1]->str, sessions) == 0) {
                nsessions++;
            } else {
                requests++;
                redisReply *h = redisCommand(hashes, "HGET %b http.host", r->element[2]->str,
                                             r->element[2]->len);
                if (h && h->type == REDIS_REPLY_STRING)
                    with_host++;
                freeReplyObject(h);
            }
        } else if (sub->err == REDIS_ERR_IO || sub->err == REDIS_ERR_EOF) {
            sub->err = 0;   /* a read timeout: nothing arrived */
            sub->errstr[0] = 0;
        }
        freeReplyObject(r);
        double t = now();
        if (t - last_report >= period) {
            printf("Requests:%lu Sessions:%lu\n", requests, nsessions);
            fflush(stdout);
            total_r += requests;
            total_s += nsessions;
            requests = nsessions = 0;
            last_report = t;
        }
        if (idle_exit > 0 && t - last_message >= idle_exit)
            break;
    }
    printf("total requests %lu sessions %lu with host %lu\n", total_r + requests,
           total_s + nsessions, with_host);
    redisFree(sub);
    redisFree(hashes);
    return 0;
}
