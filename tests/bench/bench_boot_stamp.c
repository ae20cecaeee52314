/* SPDX-License-Identifier: Apache-2.0 */
/* Boot benchmark probe: prints "BENCH <label> <CLOCK_BOOTTIME seconds>" on
   stdout (the console).  Run as PID 1 (BusyBox's switch_root execs it), it
   powers the VM off itself, since PID 1 must not exit. */
#include <stdio.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
  struct timespec ts;

  clock_gettime (CLOCK_BOOTTIME, &ts);
  printf ("BENCH %s %ld.%06ld\n", argc > 1 ? argv[1] : "stamp", (long) ts.tv_sec,
          ts.tv_nsec / 1000);
  fflush (stdout);
  if (getpid () == 1)
    {
      sync ();
      reboot (RB_POWER_OFF);
    }
  return 0;
}
