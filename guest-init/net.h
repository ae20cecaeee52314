/* SPDX-License-Identifier: Apache-2.0 */
/* Network setup over rtnetlink: lo up, eth0 address, MTU and default route. */
#ifndef CHVM_INIT_NET_H
#define CHVM_INIT_NET_H

#include "config.h"
#include "err.h"

/* Brings lo up and, when cfg has net.address, configures eth0 (which must
   exist already). */
int net_configure (const struct chvm_config *cfg, struct err **err);

#endif
