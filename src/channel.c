/*
 * channel.c — the channel and event-type grammar of SPEC §1 (pure).
 *
 * Owns byte-level validity only: whether a feature is enabled or a caller
 * may use a channel is policy's business. Every check works on explicit
 * lengths, so an embedded NUL is just another invalid byte.
 */
#include <string.h>

#include "channel.h"

#define FEATURE_MAX_LEN 32
#define NAME_MAX_LEN 200
/* Above any prefix rank (a prefix is shorter than CHANNEL_MAX_LEN). */
#define CHANNEL_RULE_EXACT 1000

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_feature_char(char c)
{
	return is_lower(c) || is_digit(c) || c == '_' || c == '-';
}

/* The character class shared by channel names and event types. */
static bool is_name_char(char c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z') || is_digit(c) ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

static bool all_name_chars(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

bool channel_valid(const char *s, size_t n)
{
	size_t f;

	if (n == 0 || !is_lower(s[0]))
		return false;
	/* The feature class has no ':', so the first one ends the feature and
	 * any later ones belong to the name. */
	for (f = 1; f < n && s[f] != ':'; f++)
		if (!is_feature_char(s[f]))
			return false;
	if (f == n || f > FEATURE_MAX_LEN)
		return false;
	n -= f + 1;
	return n >= 1 && n <= NAME_MAX_LEN && all_name_chars(s + f + 1, n);
}

size_t channel_feature_len(const char *s)
{
	size_t f = 0;

	while (s[f] != ':')
		f++;
	return f;
}

bool event_type_valid(const char *s, size_t n)
{
	return n >= 1 && n <= TYPE_MAX_LEN && all_name_chars(s, n);
}

bool event_type_reserved(const char *s, size_t n)
{
	static const char prefix[] = "herald.";

	return n >= sizeof(prefix) - 1 && memcmp(s, prefix, sizeof(prefix) - 1) == 0;
}

int channel_rule_rank(const char *pattern, const char *channel)
{
	size_t n = strlen(pattern);

	if (strcmp(pattern, channel) == 0)
		return CHANNEL_RULE_EXACT;
	if (n == 0 || pattern[n - 1] != '*' || strncmp(pattern, channel, n - 1) != 0)
		return -1;
	return (int)(n - 1);
}
