/* netdev.c - interface ioctls through a throw-away datagram socket: called
 * at start, on reload and when an interface misbehaves, never per packet. */
#include "netdev.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int netdev_ioctl(const char *name, unsigned long req, struct ifreq *ifr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    snprintf(ifr->ifr_name, sizeof ifr->ifr_name, "%s", name);
    int rc = ioctl(fd, req, ifr);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int netdev_is_up(const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    return netdev_ioctl(name, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
}
