/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal QMP client: connect to QEMU's monitor socket, read the greeting,
 * negotiate capabilities, run commands and wait for events, each bounded by
 * a CLOCK_MONOTONIC deadline.  Messages are one JSON object per line.
 */
#ifndef CHVM_QMP_H
#define CHVM_QMP_H

#include <json-c/json.h>

#include "err.h"

#define QMP_MAX_MSG (1 << 20)

struct qmp;

/* Connects to path and completes the handshake within timeout_ms.  *version
   (may be NULL) receives "qemu X.Y.Z". */
struct qmp *qmp_open (const char *path, int timeout_ms, char *version, size_t version_len,
                      struct err **err);
void qmp_close (struct qmp *q);

/* Runs cmd with args (may be NULL; ownership taken).  On success *ret (may
   be NULL) holds the "return" value (caller puts it).  A QMP error is
   returned as an error naming its class and description. */
int qmp_execute (struct qmp *q, const char *cmd, struct json_object *args, struct json_object **ret,
                 int timeout_ms, struct err **err);

/* Waits for the event named name whose data satisfies match (NULL: any);
   *data (may be NULL) receives its "data".  Events that arrived while a
   command ran are kept and looked at first. */
typedef int (*qmp_event_match) (struct json_object *data, void *opaque);
int qmp_wait_event (struct qmp *q, const char *name, qmp_event_match match, void *opaque,
                    struct json_object **data, int timeout_ms, struct err **err);

#endif
