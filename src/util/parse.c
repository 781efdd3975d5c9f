/* parse.c - strict value parsers (see parse.h). */
#include "util/parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Number followed by an optional one-letter unit from `units` with multipliers. */
static bool parse_scaled(const char *s, const char *units, const uint64_t *mult, uint64_t *out)
{
	size_t n = strlen(s);
	uint64_t m = 1;
	if (n > 0) {
		char last = s[n - 1];
		if ((last >= 'a' && last <= 'z') || (last >= 'A' && last <= 'Z')) {
			const char *u = strchr(units, last | 0x20);
			if (!u)
				return false;
			m = mult[u - units];
			n--;
		}
	}
	uint64_t v;
	if (!parse_u64(s, n, &v))
		return false;
	if (m > 1 && v > UINT64_MAX / m)
		return false;
	*out = v * m;
	return true;
}

bool parse_size(const char *s, uint64_t *out)
{
	static const uint64_t mult[] = { 1024ull, 1024ull * 1024, 1024ull * 1024 * 1024, 1 };
	return parse_scaled(s, "kmgb", mult, out);
}

bool parse_duration(const char *s, uint64_t *out)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400 };
	return parse_scaled(s, "smhd", mult, out);
}

bool parse_duration_ms(const char *s, uint64_t *out)
{
	size_t n = strlen(s);
	uint64_t mult = 0;
	if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
		mult = 1;
		n -= 2;
	} else if (n > 1 && s[n - 1] == 's') {
		mult = 1000;
		n -= 1;
	}
	uint64_t v;
	if (!parse_u64(s, n, &v) || (mult == 0 && v != 0) || v > UINT64_MAX / 1000)
		return false;
	*out = v * (mult ? mult : 1);
	return true;
}

bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
}

const char *format_size(uint64_t b, char *out, size_t outsz)
{
	if (b >= (1ull << 30))
		snprintf(out, outsz, "%.1f GB", (double)b / (1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(out, outsz, "%.1f MB", (double)b / (1ull << 20));
	else
		snprintf(out, outsz, "%.1f KB", (double)b / 1024);
	return out;
}

int parse_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}
