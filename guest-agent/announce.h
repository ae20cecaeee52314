/* SPDX-License-Identifier: Apache-2.0 */
/* Gratuitous ARP for eth0 after a restore (announce.c). */
#ifndef CHVM_ANNOUNCE_H
#define CHVM_ANNOUNCE_H

#include "err.h"

/* 1 when announced, 0 when there is nothing to announce, <0 on error. */
int announce_eth0 (struct err **err);

#endif
