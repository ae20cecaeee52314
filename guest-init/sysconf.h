/* SPDX-License-Identifier: Apache-2.0 */
/* Files in the new root a container runtime provides: hostname, /etc/hosts,
   /etc/resolv.conf, root's authorized_keys. */
#ifndef CHVM_INIT_SYSCONF_H
#define CHVM_INIT_SYSCONF_H

#include "config.h"
#include "err.h"

/* The hostname used when the config sets none. */
#define DEFAULT_HOSTNAME "chvm"

int sysconf_write (const struct chvm_config *cfg, struct err **err);

#endif
