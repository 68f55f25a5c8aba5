/* capture.c - opening an input by name (a file, or "-" for standard input),
 * and the names of live interfaces. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int capture_input_open(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return STDIN_FILENO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s", strerror(EISDIR));
        close(fd);
        return -1;
    }
    return fd;
}

int capture_open_input(struct capture *c, int fd, const struct capture_options *opt)
{
    memset(c, 0, sizeof *c);
    if (fd == STDIN_FILENO)
        return capture_file_open_fd(c, fd, 0, opt);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        c->size = (uint64_t)st.st_size;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    return capture_file_open_fd(c, fd, 1, opt);
}

int capture_open_file(struct capture *c, const char *path, const struct capture_options *opt)
{
    memset(c, 0, sizeof *c);
    int fd = capture_input_open(path, c->errbuf, sizeof c->errbuf);
    return fd < 0 ? -1 : capture_open_input(c, fd, opt);
}

static const char *iface_names[CAPTURE_MAX_IFACES + 1];

void capture_set_iface_name(int iface, const char *name)
{
    if (iface > 0 && iface <= CAPTURE_MAX_IFACES)
        iface_names[iface] = name;
}

const char *capture_iface_name(int iface)
{
    return iface > 0 && iface <= CAPTURE_MAX_IFACES ? iface_names[iface] : NULL;
}
