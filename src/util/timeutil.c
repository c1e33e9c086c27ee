/*
 * timeutil.c — the two clocks herald reads.
 *
 * Timers use the monotonic clock so that wall-clock steps never fire or
 * stall them; only timestamps shown to people and stored in the database
 * use wall time.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/timeutil.h"

/* 9999-12-31T23:59:59.999Z: the last instant with a four-digit year. */
#define WALL_MS_MAX INT64_C(253402300799999)

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t time_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t time_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

static char *put_digits(char *p, unsigned v, int width, char sep)
{
	int i;

	for (i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	p[width] = sep;
	return p + width + 1;
}

void time_format_rfc3339(int64_t wall_ms, char out[32])
{
	time_t t;
	struct tm tm;
	char *p = out;

	/* Clamped so the fixed-width layout always holds. */
	if (wall_ms < 0)
		wall_ms = 0;
	if (wall_ms > WALL_MS_MAX)
		wall_ms = WALL_MS_MAX;
	t = (time_t)(wall_ms / 1000);
	gmtime_r(&t, &tm);
	p = put_digits(p, (unsigned)tm.tm_year + 1900, 4, '-');
	p = put_digits(p, (unsigned)tm.tm_mon + 1, 2, '-');
	p = put_digits(p, (unsigned)tm.tm_mday, 2, 'T');
	p = put_digits(p, (unsigned)tm.tm_hour, 2, ':');
	p = put_digits(p, (unsigned)tm.tm_min, 2, ':');
	p = put_digits(p, (unsigned)tm.tm_sec, 2, '.');
	p = put_digits(p, (unsigned)(wall_ms % 1000), 3, 'Z');
	*p = '\0';
}

bool time_parse_rfc3339(const char *s, int64_t *wall_ms)
{
	struct tm tm;
	int ms, n = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 || n != 24 || s[n] != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*wall_ms = (int64_t)t * 1000 + ms;
	return true;
}
