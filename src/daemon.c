/* daemon.c - behaving as a service: detach from the terminal, write a pid
 * file, and give up root once every socket and device is open. */
#define _GNU_SOURCE   /* initgroups */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int daemon_detach(void)
{
    if (daemon(0, 0) < 0) {
        log_error("cannot become a daemon: %s", strerror(errno));
        return -1;
    }
    log_to_syslog();
    return 0;
}

int daemon_write_pidfile(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("pid file %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    int rc = write(fd, buf, (size_t)n) == n ? 0 : -1;
    if (rc < 0)
        log_error("pid file %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

void daemon_remove_pidfile(const char *path)
{
    /* after dropping root the directory may no longer be ours: say so only */
    if (unlink(path) < 0 && errno != ENOENT)
        log_info("pid file %s left behind: %s", path, strerror(errno));
}

int daemon_drop_privileges(const char *user)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_error("-u %s: %s", user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        log_error("-u %s: cannot switch to that user: %s", user, strerror(errno));
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {   /* must not be able to come back */
        log_error("-u %s: root could be regained; stopping", user);
        return -1;
    }
    log_info("running as %s (uid %u)", user, (unsigned)pw->pw_uid);
    return 0;
}
