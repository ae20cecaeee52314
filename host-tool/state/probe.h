/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's status from what is really there (a VMM pid that is alive and
 * ours, its API, a complete snapshot) rather than from what vm.json last
 * said; where its DevTools answers.
 */
#ifndef CHVM_STATE_PROBE_H
#define CHVM_STATE_PROBE_H

#include "state/vmrec.h"

/* Facts status derivation rests on; gathered by vm_probe(). */
struct vm_facts
{
  enum vm_status recorded;
  bool vmm_alive; /* the pid exists and its cmdline names this VM's dir */
  int api_paused; /* -1: API did not answer; 0: running; 1: paused */
  bool snapshot;  /* <dir>/snapshot exists (only complete ones are renamed there) */
};

enum vm_status vm_status_derive (const struct vm_facts *f);

/* Queries the VMM's API for paused/running; returns -1 when it does not
   answer.  Injected so derivation is testable without a VMM. */
typedef int (*vm_api_probe_fn) (const struct vm_record *r);

enum vm_status vm_probe (const char *dir, const struct vm_record *r, vm_api_probe_fn api);

/* Where the guest's DevTools answers from the host: a tap VM's own address
   (in its namespace) and spec.cdp_port, else the host side of the publish
   that covers cdp_port (0.0.0.0 as 127.0.0.1).  host is bare (an IPv6
   address without brackets).  -1 when neither exists. */
int vm_cdp_upstream (const struct vm_record *r, char *host, size_t len, unsigned *port);

#endif
