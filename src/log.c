/* log.c - stderr logging with a "dati: " prefix and a level. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_level = 1;

void log_set_level(int level) { log_level = level; }

static void log_emit(const char *kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_emit(const char *kind, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
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
