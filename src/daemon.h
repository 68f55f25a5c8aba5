/* daemon.h - detaching, pid file and dropping root for live capture (-D,
 * -p, -u). Each returns 0, or -1 after logging why. */
#ifndef DATI_DAEMON_H
#define DATI_DAEMON_H

/* Forks into the background (new session, working directory /). The
 * parent waits, and exits with the status daemon_ready() gives. */
int daemon_detach(void);

/* After daemon_detach(): start-up is over. On success (status 0) standard
 * streams go to /dev/null and messages to syslog; the parent exits with 0,
 * or 2 when status is not 0. Does nothing without daemon_detach(). */
void daemon_ready(int status);

int daemon_write_pidfile(const char *path);
void daemon_remove_pidfile(const char *path);

/* Becomes user (its uid, gid and groups) for good. */
int daemon_drop_privileges(const char *user);

#endif
