/* SPDX-License-Identifier: Apache-2.0 */
/* Quiesce and Thaw (freeze.c). */
#ifndef CHVM_FREEZE_H
#define CHVM_FREEZE_H

#include "conn.h"

struct mount_ent
{
  char *path;
  unsigned major, minor;
};
int freeze_parse_mountinfo (const char *text, struct mount_ent **out, size_t *n, struct err **err);
void freeze_free_mounts (struct mount_ent *m, size_t n);
void freeze_handle (struct conn *c, const Frame *f);
void thaw_handle (struct conn *c, const Frame *f);
/* At start: thaws what an agent that died frozen left frozen. */
void freeze_startup (void);

#endif
