/*
 * tap.h — a tiny Test Anything Protocol producer for the unit tests.
 *
 * Header-only: each test binary includes it once. Results go to stdout as
 * "ok N - name" / "not ok N - name", diagnostics as "# ..." lines, and
 * done_testing() prints the plan last, as automake's tap-driver.sh allows.
 */
#ifndef HERALD_TAP_H
#define HERALD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TAP_UNUSED __attribute__((unused))
#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

static int tap_count TAP_UNUSED;
static int tap_failed TAP_UNUSED;

/* Names and diagnostics are escaped so a line break cannot end the line
 * and be misread as a result, and '#' cannot start a directive. */
static TAP_UNUSED void tap_print_escaped(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			printf("\\n");
		else if (c == '\r')
			printf("\\r");
		else if (c == '\t')
			printf("\\t");
		else if (c == '#')
			printf("\\#");
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static TAP_UNUSED void tap_diag_value(const char *label, const char *s)
{
	printf("#   %8s: ", label);
	if (s == NULL) {
		printf("NULL\n");
		return;
	}
	putchar('\'');
	tap_print_escaped(s);
	printf("'\n");
}

static TAP_UNUSED TAP_PRINTF(4, 0) int tap_vok(int pass, const char *file, int line,
                                               const char *fmt, va_list ap)
{
	char name[512];

	tap_count++;
	vsnprintf(name, sizeof(name), fmt, ap);
	printf("%sok %d - ", pass ? "" : "not ", tap_count);
	tap_print_escaped(name);
	putchar('\n');
	if (!pass) {
		tap_failed++;
		printf("#   Failed test at %s line %d.\n", file, line);
	}
	return pass;
}

static TAP_UNUSED TAP_PRINTF(4, 5) int tap_ok(int pass, const char *file, int line,
                                              const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(pass, file, line, fmt, ap);
	va_end(ap);
	return pass;
}

static TAP_UNUSED TAP_PRINTF(5, 6) int tap_is_int(long long got, long long expected,
                                                  const char *file, int line,
                                                  const char *fmt, ...)
{
	va_list ap;
	int pass = got == expected;

	va_start(ap, fmt);
	tap_vok(pass, file, line, fmt, ap);
	va_end(ap);
	if (!pass)
		printf("#          got: %lld\n#     expected: %lld\n", got, expected);
	return pass;
}

static TAP_UNUSED TAP_PRINTF(5, 6) int tap_is_str(const char *got, const char *expected,
                                                  const char *file, int line,
                                                  const char *fmt, ...)
{
	va_list ap;
	int pass = (got == NULL || expected == NULL) ? got == expected
	                                             : strcmp(got, expected) == 0;

	va_start(ap, fmt);
	tap_vok(pass, file, line, fmt, ap);
	va_end(ap);
	if (!pass) {
		tap_diag_value("got", got);
		tap_diag_value("expected", expected);
	}
	return pass;
}

/* ok(cond, "name %d", i); is_int(got, expected, "name"); is_str(got,
 * expected, "name") — NULL strings compare equal only to NULL. */
#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, expected, ...) \
	tap_is_int((long long)(got), (long long)(expected), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, expected, ...) \
	tap_is_str((got), (expected), __FILE__, __LINE__, __VA_ARGS__)

/* Prints the plan; return its value from main. */
static TAP_UNUSED int done_testing(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed)
		printf("# failed %d of %d tests\n", tap_failed, tap_count);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif
