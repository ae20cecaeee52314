/* SPDX-License-Identifier: Apache-2.0 */
#include "button.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"
#include "log.h"

#define BUTTON_NAME "Power Button"

bool
button_name_p (const char *name)
{
  size_t len = strcspn (name, "\n");

  return len == strlen (BUTTON_NAME) && memcmp (name, BUTTON_NAME, len) == 0;
}

bool
button_power_press_p (const void *events, size_t len)
{
  const unsigned char *p = events;

  /* The ACPI driver reports press (1) then release (0); autorepeat (2) is
     not expected but is a press too. */
  for (size_t off = 0; off + sizeof (struct input_event) <= len; off += sizeof (struct input_event))
    {
      struct input_event ev;
      memcpy (&ev, p + off, sizeof ev);
      if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value != 0)
        return true;
    }
  return false;
}

static bool
known_p (const struct button *b, const char *name)
{
  for (size_t i = 0; i < b->n; i++)
    if (strcmp (b->names[i], name) == 0)
      return true;
  return false;
}

/* Opens every power button in /sys/class/input not opened yet. */
static void
scan (struct button *b)
{
  cleanup_dir DIR *dir = opendir ("/sys/class/input");
  struct dirent *de;

  while (dir != NULL && (de = readdir (dir)) != NULL && b->n < BUTTON_MAX)
    {
      char path[300];
      cleanup_free char *name = NULL;
      int fd;

      if (strncmp (de->d_name, "event", 5) != 0 || strlen (de->d_name) >= sizeof b->names[0]
          || known_p (b, de->d_name))
        continue;
      snprintf (path, sizeof path, "/sys/class/input/%s/device/name", de->d_name);
      name = read_file (path, 128, NULL, NULL);
      if (name == NULL || !button_name_p (name))
        continue;
      snprintf (path, sizeof path, "/dev/input/%s", de->d_name);
      fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0)
        {
          log_warn ("power button %s: %m", path);
          continue;
        }
      /* Fits: the length was checked above. */
      memcpy (b->names[b->n], de->d_name, strlen (de->d_name) + 1);
      b->fds[b->n++] = fd;
      log_debug ("power button is %s", path);
    }
}

void
button_init (struct button *b, int uevent_fd)
{
  b->n = 0;
  b->uevent_fd = uevent_fd;
  scan (b);
  if (b->n > 0 && b->uevent_fd >= 0)
    {
      close (b->uevent_fd);
      b->uevent_fd = -1;
    }
  else if (b->n == 0)
    log_debug ("no power button yet; watching uevents");
}

size_t
button_pollfds (const struct button *b, struct pollfd *pfd)
{
  size_t n = 0;

  for (size_t i = 0; i < b->n; i++)
    pfd[n++] = (struct pollfd){ .fd = b->fds[i], .events = POLLIN };
  if (b->uevent_fd >= 0)
    pfd[n++] = (struct pollfd){ .fd = b->uevent_fd, .events = POLLIN };
  return n;
}

/* Reads what the device has; returns true on a KEY_POWER press.  A device
   that fails (ENODEV: unplugged) is dropped. */
static bool
read_device (struct button *b, size_t i)
{
  struct input_event ev[16];
  bool pressed = false;

  for (;;)
    {
      ssize_t got = read (b->fds[i], ev, sizeof ev);
      if (got > 0)
        {
          pressed |= button_power_press_p (ev, (size_t) got);
          continue;
        }
      if (got < 0 && errno == EINTR)
        continue;
      if (got == 0 || errno != EAGAIN)
        {
          log_warn ("power button /dev/input/%s: %s", b->names[i],
                    got == 0 ? "end of file" : strerror (errno));
          close (b->fds[i]);
          b->n--;
          b->fds[i] = b->fds[b->n];
          memcpy (b->names[i], b->names[b->n], sizeof b->names[i]);
        }
      return pressed;
    }
}

bool
button_pressed (struct button *b, const struct pollfd *pfd, size_t n)
{
  bool pressed = false;

  for (size_t k = 0; k < n; k++)
    {
      if (pfd[k].revents == 0)
        continue;
      if (pfd[k].fd == b->uevent_fd)
        {
          char buf[8192];
          /* Drain; ENOBUFS (overflow) also just means "rescan". */
          while (recv (b->uevent_fd, buf, sizeof buf, MSG_DONTWAIT) > 0 || errno == ENOBUFS)
            ;
          scan (b);
          if (b->n > 0)
            {
              close (b->uevent_fd);
              b->uevent_fd = -1;
            }
          continue;
        }
      for (size_t i = 0; i < b->n; i++)
        if (b->fds[i] == pfd[k].fd)
          {
            pressed |= read_device (b, i);
            break;
          }
    }
  return pressed;
}
