/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest console on the host, with a hard bound on its disk use.
 *
 * The VMM's serial port is a unix socket, DIR/console.sock (CH Socket mode,
 * QEMU chardev socket server).  The console logger, `chvm __console-log DIR
 * VMM_PID` (a re-exec of chvm in its own session, every fd on /dev/null,
 * pid in DIR/console-log.pid), connects to it and writes DIR/console.log;
 * when that would pass $CHVM_CONSOLE_MAX bytes (default 2 MiB) it renames
 * it to console.log.1 (replacing the older one) and starts a new one, so
 * the console costs at most 2 x CHVM_CONSOLE_MAX of disk whatever the guest
 * writes.  One thread reads the socket into a fixed ring, another writes
 * the ring to the file: a slow disk makes the logger drop output (and say
 * so in the log), never stop reading, so the guest never waits on the
 * disk and the logger's memory is fixed.  It exits at EOF (the VMM is gone).
 *
 * Readers (chvm logs, chvm run's wait for guest-init) use the follower
 * below: console.log.1 then console.log, and on to the new console.log
 * after a rotation.
 */
#ifndef CHVM_CONSOLE_H
#define CHVM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define CONSOLE_MAX_DEFAULT (2u << 20)
#define CONSOLE_MAX_MIN 4096u

/* The hidden subcommand: `chvm __console-log DIR VMM_PID`. */
#define CONSOLE_LOGGER_CMD "__console-log"
int console_logger_main (int argc, char **argv);

/* vm_spec.serial_attach: starts the logger for dir (creating console.log
   if missing) and records its pid in dir/console-log.pid. */
int console_logger_start (const char *dir, pid_t vmm_pid, struct err **err);

/* Ends dir's logger, if one runs: it normally exits by itself right after
   the VMM (EOF); after grace_ms it is killed.  Removes the pid file. */
void console_logger_stop (const char *dir, int grace_ms);
/* The pid of root's console logger of VM dir that console-log.pid names,
   0 when none runs (or the file is not chvm's). */
pid_t console_logger_pid (const char *dir);

/* Reads a VM's console as it grows, across rotations. */
struct console_follow
{
  char path[4096]; /* dir/console.log */
  int fd;          /* the console.log being read, or -1 */
  int ino;         /* inotify on dir: poll it for POLLIN */
};

/* Returns <0 on error, >0 to stop reading (passed back), 0 to go on. */
typedef int (*console_sink) (void *ctx, const char *buf, size_t n, struct err **err);

/* Opens dir's console.  With old, console.log.1 is passed to sink first. */
int console_follow_open (struct console_follow *f, const char *dir, bool old, console_sink sink,
                         void *ctx, struct err **err);

/* Passes everything new to sink, following a rotation to the new
   console.log; drains the inotify fd first. */
int console_follow_read (struct console_follow *f, console_sink sink, void *ctx, struct err **err);

void console_follow_close (struct console_follow *f);

#endif
