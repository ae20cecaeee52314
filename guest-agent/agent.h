/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm-agent, everything at once, for main.c and the tests.  The layers,
 * each header including only those below it:
 *   dispatch.h   frames to handlers (the table)
 *   sysinfo.h ready.h freeze.h announce.h forward.h exec.h shutdown.h
 *                the handlers
 *   conn.h       connections, requests, streams (knows no handler)
 */
#ifndef CHVM_AGENT_H
#define CHVM_AGENT_H

#include "announce.h"
#include "conn.h"
#include "dispatch.h"
#include "exec.h"
#include "forward.h"
#include "freeze.h"
#include "ready.h"
#include "shutdown.h"
#include "sysinfo.h"

#endif
