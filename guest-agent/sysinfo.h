/* SPDX-License-Identifier: Apache-2.0 */
/* Health (sysinfo.c): memory, load, uptime, the browser's process and a
   CDP probe. */
#ifndef CHVM_SYSINFO_H
#define CHVM_SYSINFO_H

#include "conn.h"

struct sysinfo_snap
{
  uint64_t mem_total_kb, mem_available_kb, mem_free_kb;
  double uptime_s, load[3];
  int chrome_pid;
  char chrome_state[16];
};
int sysinfo_read (struct sysinfo_snap *s, struct err **err);
int sysinfo_parse_meminfo (const char *text, uint64_t *total_kb, uint64_t *avail_kb,
                           uint64_t *free_kb);
int sysinfo_parse_loadavg (const char *text, double load[3]);
const char *sysinfo_state_name (char state);
void health_handle (struct conn *c, const Frame *f);

#endif
