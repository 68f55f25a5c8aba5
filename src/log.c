/* log.c - logging with a "dati: " prefix and a level: to stderr, or to
 * syslog once dati runs as a daemon. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static int log_level = 1;
static int use_syslog;

void log_to_syslog(void)
{
    openlog("dati", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    use_syslog = 1;
}

int log_is_syslog(void) { return use_syslog; }

void log_set_level(int level) { log_level = level; }

static void log_emit(const char *kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_emit(const char *kind, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (use_syslog)
        syslog(kind[0] == 'e' ? LOG_ERR : kind[0] == 'w' ? LOG_WARNING : LOG_NOTICE, "%s%s",
               kind, msg);
    else
        fprintf(stderr, "dati: %s%s\n", kind, msg);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit("error: ", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    if (log_level < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit("warning: ", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    if (log_level < 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit("", fmt, ap);
    va_end(ap);
}

int log_due(uint64_t *last, uint64_t interval_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (*last && now - *last < interval_ns)
        return 0;
    *last = now;
    return 1;
}

void log_text(int error, char *text, size_t skip)
{
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        if ((nl = strchr(line, '\n')))
            *nl = 0;
        const char *shown = strlen(line) >= skip ? line + skip : line;
        if (error)
            log_error("%s", shown);
        else
            log_warn("%s", shown);
    }
}
