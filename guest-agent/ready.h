/* SPDX-License-Identifier: Apache-2.0 */
/* WaitReady and the probes it and Health use (ready.c). */
#ifndef CHVM_READY_H
#define CHVM_READY_H

#include "conn.h"

/* One probe = repeated attempts to reach 127.0.0.1:port, for HTTP probes a
   200 answer to GET /json/version that names "Browser". */
typedef void (*probe_cb) (void *arg, bool ok, const char *browser, const char *why);
struct probe;
struct probe *probe_start (uint16_t port, bool http, unsigned deadline_ms, bool retry, probe_cb cb,
                           void *arg);
void probe_cancel (struct probe *p);
int ready_parse_version (const char *resp, size_t len, char *browser, size_t browser_len);
void ready_handle (struct conn *c, const Frame *f);

#endif
