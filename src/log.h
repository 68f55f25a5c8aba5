/* log.h - messages for people: errors, warnings and notices on stderr or syslog.
 * Never called per packet. Thread-safe (one fprintf per message). */
#ifndef DATI_LOG_H
#define DATI_LOG_H

#include <stddef.h>
#include <stdint.h>

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* From now on to syslog (facility daemon), not stderr. */
void log_to_syslog(void);
int log_is_syslog(void);

/* Rate limiting: 1 when a message may go out now (and *last becomes now),
 * 0 when the last one is younger than interval_ns. *last starts at 0. */
int log_due(uint64_t *last, uint64_t interval_ns);

/* Each line of text (changed in place) as an error, or else a warning,
 * without its first skip bytes (a prefix the text already carries). */
void log_text(int error, char *text, size_t skip);

/* 0: errors only, 1: + warnings (default), 2: + notices. */
void log_set_level(int level);

#endif
