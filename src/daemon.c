/* daemon.c - behaving as a service: detach from the terminal (the parent
 * waits until the daemon is running, so that a failed start is seen where
 * dati was run), write a pid file, and give up root once every socket and
 * device is open. */
#define _GNU_SOURCE   /* initgroups */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* The write end of the pipe the parent of -D waits on; -1 when there is none. */
static int ready_fd = -1;

int daemon_detach(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_error("cannot become a daemon: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot become a daemon: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {   /* the parent: exit with the daemon's start-up status */
        close(p[1]);
        unsigned char status = 2;
        ssize_t n;
        do
            n = read(p[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? status : 2);
    }
    close(p[0]);
    ready_fd = p[1];
    if (setsid() < 0 || chdir("/") < 0) {
        log_error("cannot become a daemon: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void daemon_ready(int status)
{
    if (ready_fd < 0)
        return;
    if (status == 0) {   /* from now on nobody reads our terminal */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
        log_to_syslog();
    }
    unsigned char st = status ? 2 : 0;
    if (write(ready_fd, &st, 1) < 0) {
        /* the parent is gone: nothing to tell */
    }
    close(ready_fd);
    ready_fd = -1;
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
    /* capabilities too: setuid() keeps them under keep-caps, or when dati
     * started as a non-root user with capabilities */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &hdr, none) < 0) {
        log_error("-u %s: cannot drop capabilities: %s", user, strerror(errno));
        return -1;
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);   /* nor through an exec */
    log_info("running as %s (uid %u)", user, (unsigned)pw->pw_uid);
    return 0;
}
