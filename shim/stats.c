/* SPDX-License-Identifier: Apache-2.0 */
/* Stats (stats.h): the VM's cgroup, read and packed as containerd's
   cgroups v2 Metrics. */
#include "stats.h"

#include "github.com/containerd/cgroups/v2/stats/metrics.pb-c.h"
#include "state/vmstate.h"
#include "vm/vmmuser.h"

size_t
stats_pack (const struct cgroup_stats *cs, uint8_t buf[STATS_PACKED_MAX])
{
  Io__Containerd__Cgroups__V2__Metrics m = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
  Io__Containerd__Cgroups__V2__PidsStat pids = IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
  Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
  Io__Containerd__Cgroups__V2__MemoryStat mem = IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;

  pids.current = cs->pids_current;
  pids.limit = cs->pids_limit;
  cpu.usage_usec = cs->cpu_usage_usec;
  cpu.user_usec = cs->cpu_user_usec;
  cpu.system_usec = cs->cpu_system_usec;
  cpu.nr_periods = cs->cpu_nr_periods;
  cpu.nr_throttled = cs->cpu_nr_throttled;
  cpu.throttled_usec = cs->cpu_throttled_usec;
  mem.usage = cs->memory_usage;
  mem.usage_limit = cs->memory_limit;
  m.pids = &pids;
  m.cpu = &cpu;
  m.memory = &mem;
  /* At most 118 bytes, every field UINT64_MAX (tests/unit/test_shim_task.c):
     10 varints of 10 bytes, their tags (2 bytes for memory's 32 and 33),
     3 submessage headers of 2. */
  return io__containerd__cgroups__v2__metrics__pack (&m, buf);
}

int
stats_read (const struct shim *s, const struct task *t, struct cgroup_stats *cs, struct err **err)
{
  char dir[VM_PATH_MAX], path[CGROUP_PATH_MAX];

  if (vmstate_dir (s->state_root, t->vm, dir, sizeof dir, err) < 0
      || vmmuser_cgroup_find (dir, t->vm, path, sizeof path, err) < 0
      || cgroup_stats_read (path, cs, err) < 0)
    return err_wrap (err, "VM %s", t->vm);
  return 0;
}
