/* SPDX-License-Identifier: Apache-2.0 */
/* The protocol's front door (dispatch.c): decodes a frame, admits it (Hello
   first, only some requests while frozen) and routes it to its handler by
   one table, from which Hello's capability list also comes. */
#ifndef CHVM_DISPATCH_H
#define CHVM_DISPATCH_H

#include "conn.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_PROTOCOL_VERSION 1u

/* conn_accept's on_frame. */
void dispatch_frame (struct conn *c, const uint8_t *data, size_t len);
/* Pure check, kept free of I/O so it can be unit-tested and fuzzed. */
Chvm__Agent__ErrorCode dispatch_admit (const Frame *f, bool authed, bool frozen, const char **why);

#endif
