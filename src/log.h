/* log.h - messages for people: errors, warnings and notices on stderr or syslog.
 * Never called per packet. Thread-safe (one fprintf per message). */
#ifndef DATI_LOG_H
#define DATI_LOG_H

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* From now on to syslog (facility daemon), not stderr. */
void log_to_syslog(void);
int log_is_syslog(void);

/* 0: errors only, 1: + warnings (default), 2: + notices. */
void log_set_level(int level);

#endif
