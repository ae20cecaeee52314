/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's status from what is really there (a VMM that is alive and ours,
   its API, a complete snapshot), and where its DevTools answers. */
#include "state/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sys/proc.h"

enum vm_status
vm_status_derive (const struct vm_facts *f)
{
  /* standby is recorded once the snapshot is complete, before the VMM is
     stopped: a chvm killed in between leaves that VMM paused.  The snapshot
     is the VM; the next locked command stops the leftover VMM
     (vmctl_open). */
  if (f->vmm_alive && f->recorded == VM_STATUS_STANDBY && f->snapshot)
    return VM_STATUS_STANDBY;
  /* A run that has not recorded its VMM yet (or was killed before it
     could; vmctl_stop_leftover). */
  if (f->vmm_alive && f->recorded == VM_STATUS_CREATED)
    return VM_STATUS_CREATED;
  if (f->vmm_alive)
    {
      /* The API is the truth when it answers; a VMM still starting or busy
         keeps the recorded state. */
      if (f->api_paused == 1)
        return VM_STATUS_PAUSED;
      if (f->api_paused == 0)
        return VM_STATUS_RUNNING;
      return f->recorded == VM_STATUS_PAUSED ? VM_STATUS_PAUSED : VM_STATUS_RUNNING;
    }
  switch (f->recorded)
    {
    case VM_STATUS_STANDBY:
      /* Standby without its snapshot cannot be restored: it is lost. */
      return f->snapshot ? VM_STATUS_STANDBY : VM_STATUS_DEAD;
    case VM_STATUS_STOPPED:
    case VM_STATUS_CREATED:
      return f->recorded;
    case VM_STATUS_RUNNING:
    case VM_STATUS_PAUSED:
    case VM_STATUS_DEAD:
    default:
      return VM_STATUS_DEAD;
    }
}

int
vm_cdp_upstream (const struct vm_record *r, char *host, size_t len, unsigned *port)
{
  size_t n;

  if (r->address[0])
    {
      n = strcspn (r->address, "/");
      if (n >= len)
        return -1;
      memcpy (host, r->address, n);
      host[n] = '\0';
      *port = r->cdp_port;
      return 0;
    }
  for (size_t i = 0; i < r->n_publish; i++)
    if (publish_covers (&r->publish[i], false, r->cdp_port))
      {
        const char *a = r->publish[i].host_addr;
        if ((size_t) snprintf (host, len, "%s", strcmp (a, "0.0.0.0") == 0 ? "127.0.0.1" : a)
            >= len)
          return -1;
        *port = (unsigned) (r->publish[i].host_port + r->cdp_port - r->publish[i].guest_port);
        return 0;
      }
  return -1;
}

enum vm_status
vm_probe (const char *dir, const struct vm_record *r, vm_api_probe_fn api)
{
  struct vm_facts f = { .recorded = r->state, .api_paused = -1 };
  char snap[VM_PATH_MAX + 16];
  struct stat st;

  f.vmm_alive = proc_pid_names_dir (r->rt.vmm_pid, dir);
  if (f.vmm_alive && api != NULL)
    f.api_paused = api (r);
  snprintf (snap, sizeof snap, "%s/snapshot", dir);
  f.snapshot = stat (snap, &st) == 0 && S_ISDIR (st.st_mode);
  return vm_status_derive (&f);
}
