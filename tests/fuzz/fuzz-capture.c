/* fuzz-capture.c - the input as a capture file: written to a memfd, opened
 * with capture_open_file() (the pcap/pcapng reader, no hooks) and read to the
 * end. Each packet is copied to an exact-size buffer (a packet pointing
 * outside the file faults here) and decoded from there. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture.h"
#include "decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    int fd = memfd_create("fuzz-capture", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct capture c;
    if (capture_open_file(&c, path, NULL) == 0) {
        struct packet p;
        int linktype, rc;
        uint64_t last_offset = 0;
        while ((rc = capture_next(&c, &p, &linktype)) == 1) {
            if (p.caplen > CAPTURE_MAX_CAPLEN || p.wirelen < p.caplen || c.offset > size ||
                c.offset <= last_offset)
                abort();
            last_offset = c.offset;
            uint8_t *copy = malloc(p.caplen ? p.caplen : 1);
            memcpy(copy, p.data, p.caplen);
            p.data = copy;
            decode_packet(&p, linktype);
            free(copy);
        }
        if (rc != 0 && rc != -1)
            abort();
        if (rc == -1 && c.errbuf[0] == 0)
            abort();   /* damage always comes with a message */
        capture_close(&c);
    } else if (c.errbuf[0] == 0) {
        abort();
    }
    close(fd);
    return 0;
}
