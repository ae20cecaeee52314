/* SPDX-License-Identifier: Apache-2.0 */
/* The ACPI power button (QEMU's system_powerdown, Cloud Hypervisor's
   vm.power-button): its evdev devices, found by name and watched by PID 1
   next to the signalfd, so that a press is a graceful shutdown request. */
#ifndef CHVM_INIT_BUTTON_H
#define CHVM_INIT_BUTTON_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

/* QEMU exposes one button (LNXPWRBN or PNP0C0C); a few more are tolerated. */
#define BUTTON_MAX 4

struct button
{
  int fds[BUTTON_MAX]; /* /dev/input/eventN of each power button */
  char names[BUTTON_MAX][16];
  size_t n;
  int uevent_fd; /* watched until a button shows up, then closed */
};

/* Takes over uevent_fd (may be -1) and opens the power buttons present. */
void button_init (struct button *b, int uevent_fd);

/* Fills pfd (BUTTON_MAX + 1 entries) with the fds to poll; returns how
   many. */
size_t button_pollfds (const struct button *b, struct pollfd *pfd);

/* Handles the readiness poll() reported in pfd[0..n-1] (as filled by
   button_pollfds); returns true when a power button was pressed. */
bool button_pressed (struct button *b, const struct pollfd *pfd, size_t n);

/* Pure helpers (unit tested). */
/* Whether a /sys/class/input/eventN/device/name text names a power
   button. */
bool button_name_p (const char *name);
/* Whether len bytes of struct input_event hold a KEY_POWER press. */
bool button_power_press_p (const void *events, size_t len);

#endif
