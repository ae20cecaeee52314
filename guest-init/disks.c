/* SPDX-License-Identifier: Apache-2.0 */
#include "disks.h"
#include "clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "io.h"
#include "log.h"

#define PMEM_DEV "/dev/pmem0"
#define PMEM_SYS "/sys/block/pmem0"

int
uevent_open (struct err **err)
{
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
  cleanup_close int fd = -1;
  int rcvbuf = 1 << 20;

  fd = socket (AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
  if (fd < 0)
    return err_make (err, errno, "uevent socket");
  /* Module loading bursts many events; a lost one only costs a rescan. */
  setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    return err_make (err, errno, "bind uevent socket");
  return steal_fd (&fd);
}

/* Reads the first 2 KiB of dev: the config magic, and the ext4 and erofs
   superblocks at 1024.  Returns 0 when all of it was read. */
static int
read_head (const char *dev, unsigned char sb[static 2048])
{
  cleanup_close int fd = open (dev, O_RDONLY | O_CLOEXEC);

  if (fd < 0 || pread (fd, sb, 2048, 0) < 2048)
    return -1;
  return 0;
}

static bool
is_ext4 (const unsigned char *sb)
{
  return sb[1024 + 56] == 0x53 && sb[1024 + 57] == 0xef;
}

static bool
is_erofs (const unsigned char *sb)
{
  return sb[1024] == 0xe2 && sb[1025] == 0xe1 && sb[1026] == 0xf5 && sb[1027] == 0xe0;
}

const char *
disk_fs_type (const char *dev)
{
  unsigned char sb[2048];

  if (read_head (dev, sb) < 0)
    return NULL;
  return is_ext4 (sb) ? "ext4" : is_erofs (sb) ? "erofs" : NULL;
}

/* Identity of a disk without a serial: the config magic at offset 0, or an
   ext4 (offset 1024+120) or erofs (offset 1024+64) volume label. */
static void
probe_label (const char *dev, char *id, size_t idlen)
{
  unsigned char sb[2048];

  id[0] = '\0';
  if (read_head (dev, sb) < 0)
    return;
  if (memcmp (sb, CONFIG_HEADER "\n", strlen (CONFIG_HEADER) + 1) == 0)
    snprintf (id, idlen, "chvm-config");
  else if (is_ext4 (sb))
    snprintf (id, idlen, "%.16s", (const char *) sb + 1024 + 120);
  else if (is_erofs (sb))
    snprintf (id, idlen, "%.16s", (const char *) sb + 1024 + 64);
}

/* Scans /sys/block/vd*; fills want[].dev for each match, appends what it saw
   to seen, and returns how many wanted disks are still missing. */
static size_t
scan_disks (struct disk_want *want, size_t n, char *seen, size_t seenlen)
{
  cleanup_dir DIR *dir = opendir ("/sys/block");
  struct dirent *de;
  size_t missing = 0, used = 0;

  seen[0] = '\0';
  while (dir != NULL && (de = readdir (dir)) != NULL)
    {
      char path[300], id[64] = "", dev[32];
      cleanup_free char *serial = NULL;
      int byfs = 0;

      if (strncmp (de->d_name, "vd", 2) != 0)
        continue;
      snprintf (path, sizeof path, "/sys/block/%s/serial", de->d_name);
      snprintf (dev, sizeof dev, "/dev/%.26s", de->d_name);
      serial = read_file (path, 63, NULL, NULL);
      if (serial != NULL)
        snprintf (id, sizeof id, "%.*s", (int) strcspn (serial, "\n"), serial);
      if (id[0] == '\0')
        {
          probe_label (dev, id, sizeof id);
          byfs = 1;
        }
      if (used < seenlen)
        used += (size_t) snprintf (seen + used, seenlen - used, "%s%s(%s%s)", used ? " " : "",
                                   de->d_name, byfs ? "label " : "", id);
      for (size_t i = 0; i < n; i++)
        if (want[i].dev[0] == '\0' && strcmp (id, want[i].serial) == 0)
          snprintf (want[i].dev, sizeof want[i].dev, "%s", dev);
    }
  for (size_t i = 0; i < n; i++)
    missing += want[i].dev[0] == '\0';
  return missing;
}

/* Waits for the next uevent(s), draining the socket.  Returns 0 on events,
   1 on deadline. */
static int
uevent_wait (int fd, double deadline)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  char buf[8192];
  int r;

  do
    r = poll (&pfd, 1, clock_left_ms (deadline));
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return 1;
  /* ENOBUFS (overflow) also just means "rescan". */
  while (recv (fd, buf, sizeof buf, MSG_DONTWAIT) > 0 || errno == ENOBUFS)
    ;
  return 0;
}

int
disks_wait (int uevent_fd, struct disk_want *want, size_t n, double deadline, unsigned timeout_s,
            struct err **err)
{
  char seen[512];

  while (scan_disks (want, n, seen, sizeof seen) > 0)
    if (uevent_wait (uevent_fd, deadline) == 1 && scan_disks (want, n, seen, sizeof seen) > 0)
      {
        char missing[128] = "";
        size_t used = 0;
        for (size_t i = 0; i < n; i++)
          if (want[i].dev[0] == '\0' && used < sizeof missing)
            used += (size_t) snprintf (missing + used, sizeof missing - used, "%s%s",
                                       used ? ", " : "", want[i].serial);
        return err_make (err, 0, "no disk with serial %s after %us (disks seen: %s)", missing,
                         timeout_s, seen[0] ? seen : "none");
      }
  for (size_t i = 0; i < n; i++)
    log_debug ("disk %s is %s", want[i].serial, want[i].dev);
  return 0;
}

int
pmem_wait (int uevent_fd, double deadline, unsigned timeout_s, char *dev, size_t len,
           struct err **err)
{
  static const char *const drivers[] = { "virtio/drivers/virtio_pmem", "nd/drivers/nd_pmem" };
  char path[64];

  /* Without either driver no pmem0 can come: say so at once rather than
     waiting out the deadline. */
  for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
    {
      snprintf (path, sizeof path, "/sys/bus/%s", drivers[i]);
      if (access (path, F_OK) != 0)
        return err_make (err, 0, "no %s driver in this kernel or initramfs",
                         strrchr (drivers[i], '/') + 1);
    }
  while (access (PMEM_SYS, F_OK) != 0)
    if (uevent_wait (uevent_fd, deadline) == 1 && access (PMEM_SYS, F_OK) != 0)
      return err_make (err, ETIMEDOUT, "no " PMEM_DEV " after %us", timeout_s);
  snprintf (dev, len, PMEM_DEV);
  return 0;
}

int
netdev_wait (int uevent_fd, const char *ifname, double deadline, struct err **err)
{
  while (if_nametoindex (ifname) == 0)
    if (uevent_wait (uevent_fd, deadline) == 1 && if_nametoindex (ifname) == 0)
      return err_make (err, ETIMEDOUT, "network interface %s did not appear", ifname);
  return 0;
}
