/* log.c - logging with a "dati: " prefix and a level: to stderr, or to
 * syslog once dati runs as a daemon. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

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
