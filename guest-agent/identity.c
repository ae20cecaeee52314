/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identity, sent by the host right after the first Thaw of a VM forked
 * from a template (chvm run --from): the hostname (sethostname), the
 * machine-id (/etc/machine-id, written aside and renamed), and host entropy
 * mixed into the kernel's pool (RNDADDENTROPY, credited) followed by a
 * reseed (RNDRESEEDCRNG), so the kernel's random output stops following the
 * template's and its siblings'.  The reply says what changed.  In
 * --test-mode nothing is changed and the reply says so (all false).
 * What the agent cannot change (Chromium's own state and RNG, open sockets)
 * is in docs/DESIGN.md "Templates and clones".
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cleanup.h"
#include "hooks.h"
#include "log.h"

#define MACHINE_ID "/etc/machine-id"
#define MACHINE_ID_TMP "/etc/.machine-id.chvm"

bool
identity_hostname_ok (const char *s)
{
  size_t n = strlen (s);

  if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
    return false;
  return strspn (s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

bool
identity_machine_id_ok (const char *s)
{
  return strlen (s) == 32 && strspn (s, "0123456789abcdef") == 32 && strspn (s, "0") != 32;
}

static int
write_machine_id (const char *id)
{
  char line[34];
  cleanup_close int fd = open (MACHINE_ID_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);

  snprintf (line, sizeof line, "%s\n", id);
  if (fd < 0 || write (fd, line, 33) != 33 || fsync (fd) < 0)
    return -1;
  return rename (MACHINE_ID_TMP, MACHINE_ID);
}

/* Credits entropy to the pool and reseeds the CRNG; *credited bytes. */
static int
reseed (const ProtobufCBinaryData *entropy, uint32_t *credited, bool *reseeded)
{
  /* The struct and the bytes of its flexible buf after it. */
  union
  {
    struct rand_pool_info info;
    unsigned char raw[sizeof (struct rand_pool_info) + IDENTITY_ENTROPY_MAX];
  } p;
  cleanup_close int fd = open ("/dev/urandom", O_RDWR | O_CLOEXEC);

  if (fd < 0)
    return -1;
  memset (&p, 0, sizeof p);
  p.info.entropy_count = (int) entropy->len * 8;
  p.info.buf_size = (int) entropy->len;
  memcpy (p.raw + sizeof p.info, entropy->data, entropy->len);
  if (entropy->len > 0)
    {
      if (ioctl (fd, RNDADDENTROPY, &p.info) < 0)
        return -1;
      *credited = (uint32_t) entropy->len;
    }
  /* Kernels before 5.x without RNDRESEEDCRNG: the added entropy alone. */
  *reseeded = ioctl (fd, RNDRESEEDCRNG) == 0;
  return 0;
}

void
identity_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__IdentityRequest *rq = f->identity;
  Chvm__Agent__IdentityReply ir = CHVM__AGENT__IDENTITY_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;
  const char *h = rq->hostname ? rq->hostname : "", *m = rq->machine_id ? rq->machine_id : "";

  if ((h[0] && !identity_hostname_ok (h)) || (m[0] && !identity_machine_id_ok (m))
      || rq->entropy.len > IDENTITY_ENTROPY_MAX)
    {
      conn_send_error (c, f->id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST,
                       "identity: bad hostname, machine_id or more than %d bytes of entropy",
                       IDENTITY_ENTROPY_MAX);
      return;
    }
  if (!agent.test_mode)
    {
      bool reseeded = false;
      if (h[0] && sethostname (h, strlen (h)) < 0)
        {
          conn_send_error (c, f->id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "sethostname: %s",
                           strerror (errno));
          return;
        }
      ir.hostname_set = h[0] != '\0';
      if (m[0] && write_machine_id (m) < 0)
        {
          conn_send_error (c, f->id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL,
                           "%s: %s (hostname %s)", MACHINE_ID, strerror (errno),
                           ir.hostname_set ? "set" : "left");
          return;
        }
      ir.machine_id_set = m[0] != '\0';
      if (reseed (&rq->entropy, &ir.entropy_bytes, &reseeded) < 0)
        log_warn ("identity: reseeding the kernel's RNG: %s", strerror (errno));
      ir.reseeded = reseeded;
      hooks_after ("fork");
    }
  log_info ("identity: hostname %s, machine-id %s, %u bytes of entropy, %sreseeded",
            ir.hostname_set ? h : "left", ir.machine_id_set ? "set" : "left", ir.entropy_bytes,
            ir.reseeded ? "" : "not ");
  rf.id = f->id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_IDENTITY_REPLY;
  rf.identity_reply = &ir;
  conn_send (c, &rf);
}
