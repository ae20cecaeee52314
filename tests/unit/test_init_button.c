/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the power button's pure helpers (guest-init/button.c):
   which input device is the power button, and which events are a press. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/input.h>

#include "button.h"

static void
test_name (void **state)
{
  (void) state;
  assert_true (button_name_p ("Power Button\n"));
  assert_true (button_name_p ("Power Button"));
  assert_false (button_name_p ("Sleep Button\n"));
  assert_false (button_name_p ("Power Button 2\n"));
  assert_false (button_name_p ("Power\n"));
  assert_false (button_name_p (""));
}

static struct input_event
ev (unsigned short type, unsigned short code, int value)
{
  struct input_event e;

  memset (&e, 0, sizeof e);
  e.type = type;
  e.code = code;
  e.value = value;
  return e;
}

static void
test_press (void **state)
{
  /* What the ACPI driver reports for one press: key down, sync, key up,
     sync. */
  struct input_event press[] = { ev (EV_KEY, KEY_POWER, 1), ev (EV_SYN, SYN_REPORT, 0),
                                 ev (EV_KEY, KEY_POWER, 0), ev (EV_SYN, SYN_REPORT, 0) };
  struct input_event release[] = { ev (EV_KEY, KEY_POWER, 0), ev (EV_SYN, SYN_REPORT, 0) };
  struct input_event other[] = { ev (EV_KEY, KEY_SLEEP, 1), ev (EV_MSC, KEY_POWER, 1) };

  (void) state;
  assert_true (button_power_press_p (press, sizeof press));
  assert_false (button_power_press_p (release, sizeof release));
  assert_false (button_power_press_p (other, sizeof other));
  assert_false (button_power_press_p (press, 0));
  /* A partial event (a short read) is not looked at. */
  assert_false (button_power_press_p (press, sizeof press[0] - 1));
}

int
main (void)
{
  const struct CMUnitTest tests[] = { cmocka_unit_test (test_name), cmocka_unit_test (test_press) };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
