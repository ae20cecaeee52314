/* SPDX-License-Identifier: Apache-2.0 */
/* Which backend: by its recorded name, or the one a host can run. */
#include "vmm/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct backend_ops *
backend_by_name (const char *name)
{
  if (strcmp (name, backend_qemu.name) == 0)
    return &backend_qemu;
  if (strcmp (name, backend_ch.name) == 0 || strcmp (name, "ch") == 0)
    return &backend_ch;
  return NULL;
}

bool
backend_kvm_usable (char *why, size_t why_len)
{
  struct stat st;
  int fd;

  if (stat ("/sys/module/kvm_pvm", &st) == 0)
    {
      snprintf (why, why_len,
                "/dev/kvm is the kvm_pvm software module (shadow paging), which cannot run a "
                "stock Linux guest");
      return false;
    }
  fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    {
      snprintf (why, why_len, "/dev/kvm: %s", strerror (errno));
      return false;
    }
  close (fd);
  if (stat ("/sys/module/kvm_intel", &st) < 0 && stat ("/sys/module/kvm_amd", &st) < 0)
    {
      snprintf (why, why_len, "neither kvm_intel nor kvm_amd is loaded");
      return false;
    }
  return true;
}

const struct backend_ops *
backend_pick (const char *want, char *why, size_t why_len, struct err **err)
{
  char kvm_why[256], ch_why[256];

  if (strcmp (want, "qemu") == 0)
    {
      if (!backend_qemu.available (why, why_len))
        {
          err_make (err, 0, "QEMU backend unavailable: %s", why);
          return NULL;
        }
      return &backend_qemu;
    }
  if (strcmp (want, "ch") == 0)
    {
      if (!backend_ch.available (why, why_len))
        {
          err_make (err, 0, "cloud-hypervisor backend unavailable: %s", why);
          return NULL;
        }
      return &backend_ch;
    }
  if (backend_ch.available (ch_why, sizeof ch_why) && backend_kvm_usable (kvm_why, sizeof kvm_why))
    return &backend_ch;
  if (!backend_qemu.available (why, why_len))
    {
      err_make (err, 0, "no backend can run here: QEMU: %s", why);
      return NULL;
    }
  return &backend_qemu;
}
