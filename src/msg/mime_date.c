/* mime_date.c - the Date: field (RFC 5322 §3.3) as a time, for SEARCH
 * SENTBEFORE/SENTON/SENTSINCE.  Pure: no I/O, no locale, no TZ.
 *
 * Accepted, as real mail needs: an optional day of the week, comments and
 * folding anywhere (CFWS), seconds left out, the obsolete forms of §4.3:
 * two-digit years (< 50: 20xx, else 19xx), three-digit years (+ 1900),
 * zone names UT/GMT/EST/EDT/CST/CDT/MST/MDT/PST/PDT, military letters and
 * a missing zone taken as -0000 (§4.3: their meaning is unknown). */
#include <string.h>
#include <strings.h>

#include "msg/mime_internal.h"

struct dlex {
	const char *s;
	size_t n, i;
};

static void d_skip(struct dlex *lx)
{
	size_t depth = 0;
	while (lx->i < lx->n) {
		char c = lx->s[lx->i];
		if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return;
		lx->i++;
	}
}

static bool d_number(struct dlex *lx, int max_digits, long *v, int *digits)
{
	d_skip(lx);
	*v = 0;
	*digits = 0;
	while (lx->i < lx->n && lx->s[lx->i] >= '0' && lx->s[lx->i] <= '9' && *digits < max_digits) {
		*v = *v * 10 + (lx->s[lx->i++] - '0');
		(*digits)++;
	}
	return *digits > 0;
}

static size_t d_word(struct dlex *lx, char *w, size_t max)
{
	d_skip(lx);
	size_t k = 0;
	while (lx->i < lx->n && ((lx->s[lx->i] | 0x20) >= 'a' && (lx->s[lx->i] | 0x20) <= 'z')) {
		if (k + 1 < max)
			w[k++] = lx->s[lx->i];
		lx->i++;
	}
	w[k] = '\0';
	return k;
}

static bool d_char(struct dlex *lx, char c)
{
	d_skip(lx);
	if (lx->i < lx->n && lx->s[lx->i] == c) {
		lx->i++;
		return true;
	}
	return false;
}

static int month_of(const char *w)
{
	static const char *const names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
		"nov", "dec" };
	for (int m = 0; m < 12; m++)
		if (strlen(w) >= 3 && strncasecmp(w, names[m], 3) == 0)
			return m + 1;
	return 0;
}

/* The zone in seconds east of UTC (§3.3 zone, §4.3 obs-zone). */
static long zone_of(struct dlex *lx)
{
	d_skip(lx);
	if (lx->i < lx->n && (lx->s[lx->i] == '+' || lx->s[lx->i] == '-')) {
		long sign = lx->s[lx->i++] == '-' ? -1 : 1, v;
		int digits;
		if (!d_number(lx, 4, &v, &digits) || digits != 4 || v % 100 >= 60)
			return 0;
		return sign * ((v / 100) * 3600 + (v % 100) * 60);
	}
	char w[8];
	d_word(lx, w, sizeof(w));
	static const struct {
		const char *name;
		int hours;
	} zones[] = { { "UT", 0 }, { "GMT", 0 }, { "EST", -5 }, { "EDT", -4 }, { "CST", -6 }, { "CDT", -5 },
		{ "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 } };
	for (size_t k = 0; k < sizeof(zones) / sizeof(zones[0]); k++)
		if (strcasecmp(w, zones[k].name) == 0)
			return zones[k].hours * 3600L;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static long long days_from_civil(long y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (long long)era * 146097 + doe - 719468;
}

bool mime_parse_date(const char *s, size_t n, time_t *when, long *zone)
{
	struct dlex lx = { s, n, 0 };
	char w[16];
	struct dlex save = lx;
	if (d_word(&lx, w, sizeof(w)) == 0 || !d_char(&lx, ','))
		lx = save;   /* no day of the week */
	long day, year, hh, mm, ss = 0;
	int digits;
	if (!d_number(&lx, 2, &day, &digits) || day < 1 || day > 31)
		return false;
	d_char(&lx, '-');   /* "1-Dec-2026", seen in old mail */
	int month = d_word(&lx, w, sizeof(w)) ? month_of(w) : 0;
	d_char(&lx, '-');
	if (month == 0 || !d_number(&lx, 9, &year, &digits))
		return false;
	if (digits == 2)
		year += year < 50 ? 2000 : 1900;
	else if (digits == 3)
		year += 1900;
	if (!d_number(&lx, 2, &hh, &digits) || !d_char(&lx, ':') || !d_number(&lx, 2, &mm, &digits))
		return false;
	if (d_char(&lx, ':') && !d_number(&lx, 2, &ss, &digits))
		return false;
	if (hh > 23 || mm > 59 || ss > 60 || year > 9999)
		return false;
	*zone = zone_of(&lx);
	*when = (time_t)(days_from_civil(year, month, (int)day) * 86400 + hh * 3600 + mm * 60 + ss - *zone);
	return true;
}

time_t mime_date_tz(const struct mime_tree *t, long *zone)
{
	const struct mime_part *r = mime_root(t);
	long z = 0;
	time_t when = 0;
	if (r) {
		struct mime_arena a = { 0 };
		char *v = mime_header_value(&a, t->raw + r->hdr_off, r->hdr_len, "Date", false);
		if (!v || !mime_parse_date(v, strlen(v), &when, &z))
			when = 0;
		mime_arena_free(&a);
	}
	if (zone)
		*zone = when ? z : 0;
	return when;
}

time_t mime_date(const struct mime_tree *t)
{
	return mime_date_tz(t, NULL);
}
