/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "frame.h"
#include "num.h"
#include "sys/dial.h"

#define CLIENT_NAME "chvm"
#define READ_CHUNK (64u << 10)

struct agent_client
{
  int fd;
  uint64_t next_id;
  struct frame_decoder dec;
  uint8_t buf[READ_CHUNK]; /* bytes read but not yet decoded: buf[start..end) */
  size_t start, end;
  char *version;
};

uint64_t
agent_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int
send_frame (struct agent_client *a, const Chvm__Agent__Frame *f, int64_t deadline, struct err **err)
{
  size_t n = chvm__agent__frame__get_packed_size (f);
  cleanup_free uint8_t *buf = NULL;

  if (n == 0 || n > FRAME_MAX)
    return err_make (err, EMSGSIZE, "request of %zu bytes exceeds the frame limit", n);
  buf = malloc (n + FRAME_HDR_LEN);
  if (buf == NULL)
    return err_make (err, ENOMEM, "request");
  frame_put_header (buf, (uint32_t) n);
  chvm__agent__frame__pack (f, buf + FRAME_HDR_LEN);
  if (dial_write_all (a->fd, buf, n + FRAME_HDR_LEN, deadline, err) < 0)
    return err_wrap (err, "request to the agent");
  return 0;
}

/* Reads the next frame (any id). */
static int
recv_frame (struct agent_client *a, int64_t deadline, Chvm__Agent__Frame **out, struct err **err)
{
  for (;;)
    {
      while (a->start < a->end)
        {
          const uint8_t *fr;
          size_t flen;
          ssize_t n
              = frame_decoder_feed (&a->dec, a->buf + a->start, a->end - a->start, &fr, &flen, err);
          if (n < 0)
            return err_wrap (err, "reading from the agent");
          a->start += (size_t) n;
          if (fr != NULL)
            {
              *out = chvm__agent__frame__unpack (NULL, flen, fr);
              if (*out == NULL)
                return err_make (err, EPROTO, "the agent sent an undecodable frame");
              return 0;
            }
        }
      a->start = a->end = 0;
      if (dial_wait_fd (a->fd, POLLIN, deadline, "waiting for the agent's reply", err) < 0)
        return -1;
      ssize_t r = recv (a->fd, a->buf, sizeof a->buf, 0);
      if (r < 0)
        {
          if (errno == EINTR || errno == EAGAIN)
            continue;
          return err_make (err, errno, "read from the agent");
        }
      if (r == 0)
        return err_make (err, ECONNRESET, "the agent closed the connection");
      a->end = (size_t) r;
    }
}

/* Text from the guest (its error messages, its version) goes into logs,
   terminals and JSON: every byte but printable ASCII becomes '?', so no
   escape sequence or line break of the guest's reaches them. */
static void
printable (char *s)
{
  for (; s != NULL && *s; s++)
    if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
      *s = '?';
}

static int
error_reply (Chvm__Agent__ErrorReply *e, struct err **err)
{
  const ProtobufCEnumValue *v
      = protobuf_c_enum_descriptor_get_value (&chvm__agent__error_code__descriptor, e->code);
  const char *name = v ? v->name : "ERROR";

  if (strncmp (name, "ERROR_", 6) == 0)
    name += 6;
  printable (e->message);
  return err_make (err, e->code == CHVM__AGENT__ERROR_CODE__ERROR_TIMEOUT ? ETIMEDOUT : 0, "%s: %s",
                   name, e->message);
}

/* Waits for a frame with this id; an ErrorReply fails, stream frames of
   other ids (left over from timed-out calls) are dropped. */
static int
recv_for (struct agent_client *a, uint64_t id, int64_t deadline, Chvm__Agent__Frame **out,
          struct err **err)
{
  for (;;)
    {
      Chvm__Agent__Frame *f = NULL;
      if (recv_frame (a, deadline, &f, err) < 0)
        return -1;
      if (f->body_case == CHVM__AGENT__FRAME__BODY_ERROR && (f->id == id || f->id == 0))
        {
          error_reply (f->error, err);
          chvm__agent__frame__free_unpacked (f, NULL);
          return -1;
        }
      if (f->id == id)
        {
          *out = f;
          return 0;
        }
      chvm__agent__frame__free_unpacked (f, NULL);
    }
}

int
agent_call (struct agent_client *a, Chvm__Agent__Frame *req, Chvm__Agent__Frame__BodyCase want,
            int timeout_ms, Chvm__Agent__Frame **reply, struct err **err)
{
  int64_t deadline = clock_now_ms () + timeout_ms;
  Chvm__Agent__Frame *f = NULL;

  *reply = NULL;
  req->id = a->next_id++;
  if (send_frame (a, req, deadline, err) < 0)
    return -1;
  if (recv_for (a, req->id, deadline, &f, err) < 0)
    return -1;
  if (f->body_case != want)
    {
      int r = err_make (err, EPROTO, "the agent answered with message %d, expected %d",
                        (int) f->body_case, (int) want);
      chvm__agent__frame__free_unpacked (f, NULL);
      return r;
    }
  *reply = f;
  return 0;
}

struct agent_client *
agent_open (int fd, const char *token, int timeout_ms, struct err **err)
{
  Chvm__Agent__Hello h = CHVM__AGENT__HELLO__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;
  Chvm__Agent__Frame *rep = NULL;
  struct agent_client *a = calloc (1, sizeof *a);
  int flags;

  if (a == NULL)
    {
      close (fd);
      err_make (err, ENOMEM, "agent client");
      return NULL;
    }
  a->fd = fd;
  a->next_id = 1;
  frame_decoder_init (&a->dec);
  /* Non-blocking so that every read and write honours its deadline. */
  flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      err_make (err, errno, "fcntl");
      agent_close (a);
      return NULL;
    }
  h.protocol_version = 1;
  h.token = (char *) (token ? token : "");
  h.client = (char *) CLIENT_NAME;
  f.body_case = CHVM__AGENT__FRAME__BODY_HELLO;
  f.hello = &h;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_HELLO_REPLY, timeout_ms, &rep, err) < 0)
    {
      err_wrap (err, "agent Hello");
      agent_close (a);
      return NULL;
    }
  if (rep->hello_reply->protocol_version != 1)
    {
      err_make (err, EPROTO, "agent chose protocol version %u", rep->hello_reply->protocol_version);
      chvm__agent__frame__free_unpacked (rep, NULL);
      agent_close (a);
      return NULL;
    }
  a->version = strdup (rep->hello_reply->agent_version);
  printable (a->version);
  chvm__agent__frame__free_unpacked (rep, NULL);
  return a;
}

void
agent_close (struct agent_client *a)
{
  if (a == NULL)
    return;
  if (a->fd >= 0)
    close (a->fd);
  frame_decoder_free (&a->dec);
  free (a->version);
  free (a);
}

const char *
agent_version (const struct agent_client *a)
{
  return a->version ? a->version : "";
}

int
agent_ping (struct agent_client *a, int timeout_ms, struct err **err)
{
  Chvm__Agent__PingRequest p = CHVM__AGENT__PING_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;

  f.body_case = CHVM__AGENT__FRAME__BODY_PING;
  f.ping = &p;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_PING_REPLY, timeout_ms, &rep, err) < 0)
    return -1;
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

int
agent_health (struct agent_client *a, int timeout_ms, Chvm__Agent__Frame **reply, struct err **err)
{
  Chvm__Agent__HealthRequest h = CHVM__AGENT__HEALTH_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;

  /* Half the call's budget, at most 10 s: CDP in a loaded (or emulated)
     guest can take seconds to answer. */
  h.cdp_timeout_ms = timeout_ms / 2 > 10000 ? 10000 : (unsigned) timeout_ms / 2;
  f.body_case = CHVM__AGENT__FRAME__BODY_HEALTH;
  f.health = &h;
  return agent_call (a, &f, CHVM__AGENT__FRAME__BODY_HEALTH_REPLY, timeout_ms, reply, err);
}

int
agent_wait_ready (struct agent_client *a, unsigned deadline_ms, unsigned cdp_port,
                  Chvm__Agent__Frame **reply, struct err **err)
{
  Chvm__Agent__WaitReadyRequest w = CHVM__AGENT__WAIT_READY_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;

  w.deadline_ms = deadline_ms;
  w.cdp_port = cdp_port;
  f.body_case = CHVM__AGENT__FRAME__BODY_WAIT_READY;
  f.wait_ready = &w;
  /* The agent enforces the deadline; allow its answer a moment to arrive. */
  return agent_call (a, &f, CHVM__AGENT__FRAME__BODY_WAIT_READY_REPLY, (int) deadline_ms + 2000,
                     reply, err);
}

int
agent_quiesce (struct agent_client *a, unsigned freeze_timeout_ms, bool drop_caches, bool compact,
               struct agent_quiesced *out, int timeout_ms, struct err **err)
{
  Chvm__Agent__QuiesceRequest q = CHVM__AGENT__QUIESCE_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;

  q.timeout_ms = freeze_timeout_ms;
  q.drop_caches = drop_caches;
  q.compact = compact;
  f.body_case = CHVM__AGENT__FRAME__BODY_QUIESCE;
  f.quiesce = &q;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_QUIESCE_REPLY, timeout_ms, &rep, err) < 0)
    return -1;
  if (out != NULL)
    *out = (struct agent_quiesced){ rep->quiesce_reply->frozen_count, rep->quiesce_reply->freed_kb,
                                    rep->quiesce_reply->mem_total_kb,
                                    rep->quiesce_reply->mem_available_kb,
                                    rep->quiesce_reply->mem_free_kb };
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

int
agent_thaw (struct agent_client *a, uint64_t host_time_ns, bool restored, unsigned *thawed,
            unsigned *closed, int64_t *clock_step_ns, int timeout_ms, struct err **err)
{
  Chvm__Agent__ThawRequest t = CHVM__AGENT__THAW_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;

  t.host_time_ns = host_time_ns;
  t.restored = restored;
  f.body_case = CHVM__AGENT__FRAME__BODY_THAW;
  f.thaw = &t;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_THAW_REPLY, timeout_ms, &rep, err) < 0)
    return -1;
  if (thawed)
    *thawed = rep->thaw_reply->thawed_count;
  if (closed)
    *closed = rep->thaw_reply->closed_count;
  if (clock_step_ns)
    *clock_step_ns = rep->thaw_reply->clock_step_ns;
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

int
agent_identity (struct agent_client *a, const char *hostname, const char *machine_id,
                const uint8_t *entropy, size_t entropy_len, struct agent_identity *out,
                int timeout_ms, struct err **err)
{
  Chvm__Agent__IdentityRequest r = CHVM__AGENT__IDENTITY_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;

  r.hostname = (char *) hostname;
  r.machine_id = (char *) machine_id;
  r.entropy.data = (uint8_t *) entropy;
  r.entropy.len = entropy_len;
  f.body_case = CHVM__AGENT__FRAME__BODY_IDENTITY;
  f.identity = &r;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_IDENTITY_REPLY, timeout_ms, &rep, err) < 0)
    return -1;
  out->hostname_set = rep->identity_reply->hostname_set;
  out->machine_id_set = rep->identity_reply->machine_id_set;
  out->reseeded = rep->identity_reply->reseeded;
  out->entropy_bytes = rep->identity_reply->entropy_bytes;
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

int
agent_shutdown (struct agent_client *a, bool poweroff, int timeout_ms, struct err **err)
{
  Chvm__Agent__ShutdownRequest s = CHVM__AGENT__SHUTDOWN_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;

  s.poweroff = poweroff;
  f.body_case = CHVM__AGENT__FRAME__BODY_SHUTDOWN;
  f.shutdown = &s;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_SHUTDOWN_REPLY, timeout_ms, &rep, err) < 0)
    return -1;
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

static size_t
count_strv (char *const v[])
{
  size_t n = 0;

  while (v != NULL && v[n] != NULL)
    n++;
  return n;
}

int
agent_exec (struct agent_client *a, const struct agent_exec_req *rq, int timeout_ms,
            agent_output_fn on_output, void *arg, int *code, int *signal, struct err **err)
{
  Chvm__Agent__ExecRequest x = CHVM__AGENT__EXEC_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;
  int64_t deadline = clock_now_ms () + timeout_ms;

  x.n_argv = count_strv (rq->argv);
  x.argv = (char **) rq->argv;
  x.n_env = count_strv (rq->env);
  x.env = (char **) rq->env;
  x.cwd = (char *) (rq->cwd ? rq->cwd : "");
  x.input.data = (uint8_t *) rq->input;
  x.input.len = rq->input_len;
  x.has_input = rq->has_input;
  x.timeout_ms = rq->timeout_ms;
  f.id = a->next_id++;
  f.body_case = CHVM__AGENT__FRAME__BODY_EXEC;
  f.exec = &x;
  if (send_frame (a, &f, deadline, err) < 0)
    return -1;
  for (;;)
    {
      Chvm__Agent__Frame *r = NULL;
      if (recv_for (a, f.id, deadline, &r, err) < 0)
        return -1;
      if (r->body_case == CHVM__AGENT__FRAME__BODY_EXEC_OUTPUT)
        {
          if (on_output)
            on_output (arg, r->exec_output->stream, r->exec_output->data.data,
                       r->exec_output->data.len);
        }
      else if (r->body_case == CHVM__AGENT__FRAME__BODY_EXEC_EXIT)
        {
          *code = r->exec_exit->code;
          *signal = r->exec_exit->signal;
          chvm__agent__frame__free_unpacked (r, NULL);
          return 0;
        }
      else
        {
          int rc = err_make (err, EPROTO, "unexpected message %d during exec", (int) r->body_case);
          chvm__agent__frame__free_unpacked (r, NULL);
          return rc;
        }
      chvm__agent__frame__free_unpacked (r, NULL);
    }
}

int
agent_forward (struct agent_client *a, unsigned port, int timeout_ms, uint8_t **early,
               size_t *early_len, struct err **err)
{
  Chvm__Agent__ForwardRequest fw = CHVM__AGENT__FORWARD_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;
  int fd, flags;

  *early = NULL;
  *early_len = 0;
  fw.port = port;
  f.body_case = CHVM__AGENT__FRAME__BODY_FORWARD;
  f.forward = &fw;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_FORWARD_REPLY, timeout_ms, &rep, err) < 0)
    {
      agent_close (a);
      return -1;
    }
  chvm__agent__frame__free_unpacked (rep, NULL);
  if (a->end > a->start)
    {
      *early_len = a->end - a->start;
      *early = malloc (*early_len);
      if (*early == NULL)
        {
          agent_close (a);
          return err_make (err, ENOMEM, "forward");
        }
      memcpy (*early, a->buf + a->start, *early_len);
    }
  fd = a->fd;
  a->fd = -1;
  agent_close (a);
  /* Back to blocking: the caller splices with plain read/write. */
  flags = fcntl (fd, F_GETFL);
  if (flags >= 0)
    fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}
