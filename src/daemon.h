/* daemon.h - detaching, pid file and dropping root for live capture (-D,
 * -p, -u). Each returns 0, or -1 after logging why. */
#ifndef DATI_DAEMON_H
#define DATI_DAEMON_H

/* Forks into the background, standard streams to /dev/null, logs to syslog. */
int daemon_detach(void);

int daemon_write_pidfile(const char *path);
void daemon_remove_pidfile(const char *path);

/* Becomes user (its uid, gid and groups) for good. */
int daemon_drop_privileges(const char *user);

#endif
