/* SPDX-License-Identifier: Apache-2.0 */
/* The frames between the supervisor's parent and its worker (supmsg.h):
   made, sent, and checked as they come. */
#include "supervisor/supmsg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/sup.h"

void
supmsg_make (struct supmsg *m, uint32_t type, uint32_t val, const char *text)
{
  size_t n = text != NULL ? strnlen (text, SUPMSG_TEXT_MAX - 1) : 0;

  memset (m, 0, sizeof *m);
  m->type = type;
  m->val = val;
  if (n > 0)
    memcpy (m->text, text, n);
}

/* The text: 0 when it is n bytes of allowed characters (browser: those of
   a path, else printable ASCII), a NUL, then zeros alone. */
static int
text_check (const char *t, bool browser, size_t *n)
{
  *n = strnlen (t, SUPMSG_TEXT_MAX);
  if (*n == SUPMSG_TEXT_MAX)
    return -1;
  for (size_t i = *n; i < SUPMSG_TEXT_MAX; i++)
    if (t[i] != '\0')
      return -1;
  for (size_t i = 0; i < *n; i++)
    {
      char c = t[i];
      bool ok = browser ? (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                              || c == '.' || c == '_' || c == '-' || c == '/'
                        : c >= 0x20 && c <= 0x7e;
      if (!ok)
        return -1;
    }
  return 0;
}

/* The bound on val of type: its largest value. */
static uint32_t
val_max (uint32_t type)
{
  switch (type)
    {
    case SUPMSG_WAKE:
      return SUPMSG_WAKE_BYTE;
    case SUPMSG_CLIENTS:
      return SUPMSG_CLIENTS_MAX;
    case SUPMSG_OUTSTANDING:
    case SUPMSG_MAX_CLIENTS:
      return UINT32_MAX;
    case SUPMSG_HELD:
      return 1;
    case SUPMSG_STATE:
      return SUP_WAKING;
    default:
      return 0;
    }
}

int
supmsg_decode (const void *buf, size_t len, bool from_worker, struct supmsg *m, struct err **err)
{
  bool has_text, browser;
  size_t n;

  if (len != sizeof *m)
    return err_make (err, 0, "a frame of %zu bytes (not %zu)", len, sizeof *m);
  memcpy (m, buf, sizeof *m);
  if (from_worker ? m->type < SUPMSG_WAKE || m->type > SUPMSG_WORKER_LAST
                  : m->type < SUPMSG_STATE || m->type > SUPMSG_PARENT_LAST)
    return err_make (err, 0, "a frame of unknown type %u", (unsigned) m->type);
  if (m->val > val_max (m->type))
    return err_make (err, 0, "a frame of type %u with value %u out of bounds", (unsigned) m->type,
                     (unsigned) m->val);
  browser = m->type == SUPMSG_BROWSER_PATH;
  has_text = browser || m->type == SUPMSG_WAKE_FAILED;
  if (text_check (m->text, browser, &n) < 0 || (!has_text && n > 0)
      || (browser && m->text[0] != '/'))
    return err_make (err, 0, "a frame of type %u with a bad text", (unsigned) m->type);
  return 0;
}

int
supmsg_send_fd (int chan, int32_t rc, int fd)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = { .iov_base = &rc, .iov_len = sizeof rc };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

  memset (&u, 0, sizeof u);
  if (fd >= 0)
    {
      struct cmsghdr *cm;
      mh.msg_control = u.buf;
      mh.msg_controllen = sizeof u.buf;
      cm = CMSG_FIRSTHDR (&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN (sizeof (int));
      memcpy (CMSG_DATA (cm), &fd, sizeof fd);
    }
  return sendmsg (chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t) sizeof rc ? 0 : -1;
}

int
supmsg_dial (int chan)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  const char req = SUPMSG_DIAL;
  int32_t rc = 0;
  struct iovec iov = { .iov_base = &rc, .iov_len = sizeof rc };
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *cm;
  ssize_t n;
  int fd = -1;

  if (send (chan, &req, 1, MSG_NOSIGNAL) != 1)
    return -1;
  do
    n = recvmsg (chan, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  cm = CMSG_FIRSTHDR (&mh);
  if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
      && cm->cmsg_len == CMSG_LEN (sizeof (int)))
    memcpy (&fd, CMSG_DATA (cm), sizeof fd);
  if (n == (ssize_t) sizeof rc && rc == 0 && fd >= 0 && !(mh.msg_flags & MSG_CTRUNC))
    return fd;
  if (fd >= 0)
    close (fd);
  errno = n != (ssize_t) sizeof rc ? EPROTO : rc > 0 ? rc : EPROTO;
  return -1;
}

int
supmsg_recv (int fd, bool from_worker, struct supmsg *m, struct err **err)
{
  unsigned char buf[sizeof (struct supmsg) + 1]; /* one byte more: a longer frame is seen */
  ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);

  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  if (n <= 0)
    {
      err_make (err, n == 0 ? 0 : errno, n == 0 ? "closed its channel" : "broke its channel");
      return SUPMSG_CLOSED;
    }
  return supmsg_decode (buf, (size_t) n, from_worker, m, err) < 0 ? SUPMSG_BAD : 1;
}

int
supmsg_send (int fd, uint32_t type, uint32_t val, const char *text, bool nonblock)
{
  struct supmsg m;
  ssize_t n;

  supmsg_make (&m, type, val, text);
  do
    n = send (fd, &m, sizeof m, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  if ((size_t) n != sizeof m)
    {
      errno = EMSGSIZE;
      return -1;
    }
  return 0;
}
