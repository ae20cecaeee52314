/* SPDX-License-Identifier: Apache-2.0 */
/* --live-view's plan: the ports it publishes (a free TCP port for 8080, a
   free UDP range with the same ports on both sides, past one in use), the
   environment it gives the guest, the URL, and the addresses it refuses.
   Loopback only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/liveview.h"

static int
bind_udp (uint16_t port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_port = htons (port),
                            .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int fd = socket (AF_INET, SOCK_DGRAM, 0);

  assert_true (fd >= 0);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

static void
test_plan (void **state)
{
  struct liveview lv;
  struct err *err = NULL;
  char want[160];

  (void) state;
  assert_int_equal (liveview_plan (NULL, &lv, &err), 0);
  assert_string_equal (lv.signalling.host_addr, "127.0.0.1");
  assert_int_equal (lv.signalling.guest_port, LIVEVIEW_GUEST_PORT);
  assert_true (lv.signalling.host_port > 0);
  assert_false (lv.signalling.udp);
  assert_true (lv.media.udp);
  assert_int_equal (lv.media.count, LIVEVIEW_UDP_COUNT);
  assert_int_equal (lv.media.host_port, lv.media.guest_port);
  assert_true (lv.media.host_port >= LIVEVIEW_UDP_FIRST);
  assert_int_equal ((lv.media.host_port - LIVEVIEW_UDP_FIRST) % LIVEVIEW_UDP_COUNT, 0);
  assert_string_equal (lv.env[0], "ENABLE_WEBRTC=true");
  assert_string_equal (lv.env[1], "NEKO_WEBRTC_NAT1TO1=127.0.0.1");
  snprintf (want, sizeof want, "NEKO_WEBRTC_EPR=%u-%u", (unsigned) lv.media.host_port,
            (unsigned) lv.media.host_port + LIVEVIEW_UDP_COUNT - 1);
  assert_string_equal (lv.env[2], want);
  /* The media range is out of Linux's default ephemeral range (32768-60999). */
  assert_true (lv.media.host_port + LIVEVIEW_UDP_COUNT - 1 <= LIVEVIEW_UDP_LAST);
  assert_true (LIVEVIEW_UDP_LAST < 32768);
  /* The token: 128 bits from getrandom, in the URL and the guest's env. */
  assert_int_equal (strlen (lv.token), 2 * LIVEVIEW_TOKEN_BYTES);
  assert_int_equal (strspn (lv.token, "0123456789abcdef"), 2 * LIVEVIEW_TOKEN_BYTES);
  assert_true (LIVEVIEW_TOKEN_BYTES >= 16);
  snprintf (want, sizeof want, "CHVM_LIVE_VIEW_TOKEN=%s", lv.token);
  assert_string_equal (lv.env[3], want);
  snprintf (want, sizeof want, "NEKO_PASSWORD=%s", lv.token);
  assert_string_equal (lv.env[4], want);
  snprintf (want, sizeof want, "NEKO_MEMBER_MULTIUSER_ADMIN_PASSWORD=%s", lv.token);
  assert_string_equal (lv.env[LIVEVIEW_N_ENV - 1], want);
  snprintf (want, sizeof want, "http://127.0.0.1:%u/?token=%s", lv.signalling.host_port, lv.token);
  assert_string_equal (lv.url, want);
}

/* Each plan (each VM) has a token of its own. */
static void
test_token_per_vm (void **state)
{
  struct liveview a, b;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (liveview_plan (NULL, &a, &err), 0);
  assert_int_equal (liveview_plan (NULL, &b, &err), 0);
  assert_string_not_equal (a.token, b.token);
}

/* A port in use in the middle of the range it would take moves it to the
   next whole range. */
static void
test_range_in_use (void **state)
{
  struct liveview lv, lv2;
  struct err *err = NULL;
  int fd;

  (void) state;
  /* Another process (a VM of a test running beside) may take the free
     range between the plan and the bind: plan again, a few times. */
  fd = -1;
  for (int i = 0; i < 5 && fd < 0; i++)
    {
      assert_int_equal (liveview_plan ("127.0.0.1", &lv, &err), 0);
      fd = bind_udp ((uint16_t) (lv.media.host_port + 50));
    }
  assert_true (fd >= 0);
  assert_int_equal (liveview_plan ("127.0.0.1", &lv2, &err), 0);
  assert_true (lv2.media.host_port >= lv.media.host_port + LIVEVIEW_UDP_COUNT);
  close (fd);
}

static void
test_bad_addresses (void **state)
{
  static const struct
  {
    const char *addr, *msg;
  } bad[] = {
    { "0.0.0.0", "not an address a viewer can reach" },
    { "nonsense", "not an IPv4 address" },
    { "::1", "not an IPv4 address" },
    { "192.0.2.1", "192.0.2.1" }, /* not this host's: nothing binds there */
  };
  struct liveview lv;

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      struct err *err = NULL;
      assert_true (liveview_plan (bad[i].addr, &lv, &err) < 0);
      assert_non_null (err);
      if (strstr (err->msg, bad[i].msg) == NULL)
        fail_msg ("%s: '%s' lacks '%s'", bad[i].addr, err->msg, bad[i].msg);
      err_release (&err);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plan),
    cmocka_unit_test (test_range_in_use),
    cmocka_unit_test (test_token_per_vm),
    cmocka_unit_test (test_bad_addresses),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
