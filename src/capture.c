/* capture.c - picks the back-end for an input: a regular file is mapped,
 * anything else (a pipe, "-") goes through libpcap's reader. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int capture_open_file(struct capture *c, const char *path)
{
    memset(c, 0, sizeof *c);
    if (strcmp(path, "-") == 0)
        return capture_pcap_open(c, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return capture_pcap_open(c, path);
    }
    int rc = capture_file_open_mmap(c, fd, (uint64_t)st.st_size);
    close(fd);   /* the mapping keeps the file */
    return rc;
}
