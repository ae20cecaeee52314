/* SPDX-License-Identifier: Apache-2.0 */
/* Finding devices by identity, never by probe order: virtio-blk disks by
   serial (fallback: filesystem label or config magic) and network links by
   name, waiting on kernel uevents up to a deadline. */
#ifndef CHVM_INIT_DISKS_H
#define CHVM_INIT_DISKS_H

#include <stddef.h>
#include <time.h>

#include "err.h"

struct disk_want
{
  const char *serial; /* "chvm-root", "chvm-config", "chvm-upper" */
  char dev[32];       /* "/dev/vdb" once found */
};

/* Opens the uevent socket; open it before loading drivers so no event is
   missed between the scan and the wait. */
int uevent_open (struct err **err);

/* Waits until every disk in want[0..n) is found or the deadline passes; the
   error then names the missing serials and the disks seen. */
int disks_wait (int uevent_fd, struct disk_want *want, size_t n, double deadline,
                unsigned timeout_s, struct err **err);

/* The root's virtio-pmem device (chvm run --rootfs-device pmem): waits
   until /dev/pmem0 exists and puts its path in dev.  Fails at once when the
   virtio_pmem or nd_pmem driver is missing, else at the deadline; the error
   says which. */
int pmem_wait (int uevent_fd, double deadline, unsigned timeout_s, char *dev, size_t len,
               struct err **err);

/* "ext4" or "erofs" by the superblock of dev, else NULL. */
const char *disk_fs_type (const char *dev);

/* Waits until the network interface ifname exists. */
int netdev_wait (int uevent_fd, const char *ifname, double deadline, struct err **err);

#endif
