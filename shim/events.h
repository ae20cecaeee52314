/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task events to containerd, in order, one at a time: the message packed
 * into a google.protobuf.Any (type_url the bare name, as containerd's
 * typeurl registers it, e.g. "containerd.events.TaskExit") and handed on
 * stdin to `PUBLISH_BINARY --address ADDRESS publish --topic T --namespace
 * NS` (containerd's own fallback publisher).
 */
#ifndef CHVM_SHIM_EVENTS_H
#define CHVM_SHIM_EVENTS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

struct event_base;
struct events;

struct events *events_new (struct event_base *base, const char *publish_binary, const char *address,
                           const char *ns);
void events_free (struct events *e);

/* Queues topic ("/tasks/exit") with msg, type_url its full name.  A failure
   is logged (containerd then learns it from Wait and State). */
void events_publish (struct events *e, const char *topic, const char *type_url,
                     const ProtobufCMessage *msg);

/* Whether nothing is queued or being published; fn is called once the
   queue drains (NULL: no call). */
bool events_idle (struct events *e);
void events_on_idle (struct events *e, void (*fn) (void *), void *arg);

#endif
