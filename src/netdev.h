/* netdev.h - asking the kernel about a network interface by name (its link
 * type, its flags) and changing its flags: the interface ioctls the live
 * capture and the TAP_IF pool share. */
#ifndef DATI_NETDEV_H
#define DATI_NETDEV_H

#include <net/if.h>

/* Runs ioctl req (SIOCGIFHWADDR, SIOCGIFFLAGS, SIOCSIFFLAGS...) for the
 * interface name, ifr in and out. Returns 0, or -1 with errno set. */
int netdev_ioctl(const char *name, unsigned long req, struct ifreq *ifr);

/* 1 when the interface exists and is up. */
int netdev_is_up(const char *name);

#endif
