/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stats: the VM's cgroup (host-tool/sys/cgroup.h; one per VM, every
 * process of its VMM in it) as containerd's cgroups v2 Metrics
 * (io.containerd.cgroups.v2.Metrics, proto/containerd/README.md), the
 * message a runc task's Stats answers on a cgroup v2 host: `ctr task
 * metrics` prints it.  Pids, cpu and memory; no io, rdma or hugetlb.
 */
#ifndef CHVM_SHIM_STATS_H
#define CHVM_SHIM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "shim.h"
#include "sys/cgroup.h"

/* Stats' type_url: the name containerd's typeurl knows the message by. */
#define STATS_TYPE_URL "io.containerd.cgroups.v2.Metrics"
/* At most this many bytes packed (three messages of uint64s). */
#define STATS_PACKED_MAX 128

/* cs as a packed Metrics into buf (STATS_PACKED_MAX bytes); its length. */
size_t stats_pack (const struct cgroup_stats *cs, uint8_t buf[STATS_PACKED_MAX]);

/* What the cgroup of t's VM counts now. */
int stats_read (const struct shim *s, const struct task *t, struct cgroup_stats *cs,
                struct err **err);

#endif
