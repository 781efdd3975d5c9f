/* parse_text.c - modified UTF-7 for mailbox names (RFC 3501 §5.1.3: "&" starts
 * modified BASE64 of UTF-16BE, "," for "/", "-" ends it, "&-" is "&") and the
 * dates of RFC 3501 §9 (date, date-time). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap/parse_internal.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64, ch) : NULL;
	return p ? (int)(p - b64) : -1;
}

static bool put_utf8(unsigned cp, char *out, size_t outsz, size_t *k)
{
	unsigned char tmp[4];
	size_t n;
	if (cp < 0x80) {
		tmp[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (unsigned char)(0xC0 | (cp >> 6));
		tmp[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (unsigned char)(0xE0 | (cp >> 12));
		tmp[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		tmp[0] = (unsigned char)(0xF0 | (cp >> 18));
		tmp[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		tmp[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (*k + n >= outsz)
		return false;
	memcpy(out + *k, tmp, n);
	*k += n;
	return true;
}

/* One "&...-" run starting after '&'; *i ends after the '-'. */
static bool decode_run(const char *in, size_t n, size_t *i, char *out, size_t outsz, size_t *k)
{
	unsigned bits = 0, nbits = 0, high = 0;
	size_t start = *i;
	while (*i < n && in[*i] != '-') {
		int v = b64_value(in[*i]);
		if (v < 0)
			return false;
		bits = (bits << 6) | (unsigned)v;
		nbits += 6;
		(*i)++;
		if (nbits < 16)
			continue;
		nbits -= 16;
		unsigned u = (bits >> nbits) & 0xFFFF;
		bits &= (1u << nbits) - 1;
		if (high) {
			if (u < 0xDC00 || u > 0xDFFF)
				return false;
			if (!put_utf8(0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00), out, outsz, k))
				return false;
			high = 0;
		} else if (u >= 0xD800 && u <= 0xDBFF) {
			high = u;
		} else if (u >= 0xDC00 && u <= 0xDFFF) {
			return false;
		} else if (u < 0x20 || (u >= 0x20 && u <= 0x7E)) {
			return false;   /* controls are no names; printable ASCII must stand for itself */
		} else if (!put_utf8(u, out, outsz, k)) {
			return false;
		}
	}
	if (*i >= n || *i == start || high || nbits >= 6 || (bits & ((1u << nbits) - 1)))
		return false;   /* unterminated, empty, half a pair, or leftover bits */
	(*i)++;
	return true;
}

bool imap_mutf7_decode(const char *in, size_t n, char *out, size_t outsz)
{
	size_t k = 0;
	if (outsz == 0)
		return false;
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)in[i];
		if (ch < 0x20 || ch > 0x7E)
			return false;
		if (ch != '&') {
			if (k + 1 >= outsz)
				return false;
			out[k++] = (char)ch;
			i++;
			continue;
		}
		i++;
		if (i < n && in[i] == '-') {
			if (k + 1 >= outsz)
				return false;
			out[k++] = '&';
			i++;
			continue;
		}
		if (!decode_run(in, n, &i, out, outsz, &k))
			return false;
	}
	out[k] = '\0';
	return true;
}

/* The next code point of UTF-8 text; 0 and *len 0 when not valid. */
static unsigned next_cp(const unsigned char *s, size_t n, size_t *len)
{
	*len = 0;
	unsigned cp;
	size_t need;
	if (s[0] < 0x80) {
		*len = 1;
		return s[0];
	} else if ((s[0] & 0xE0) == 0xC0) {
		cp = s[0] & 0x1F;
		need = 1;
	} else if ((s[0] & 0xF0) == 0xE0) {
		cp = s[0] & 0x0F;
		need = 2;
	} else if ((s[0] & 0xF8) == 0xF0) {
		cp = s[0] & 0x07;
		need = 3;
	} else {
		return 0;
	}
	if (need >= n)
		return 0;
	for (size_t j = 1; j <= need; j++) {
		if ((s[j] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[j] & 0x3F);
	}
	static const unsigned min[] = { 0, 0x80, 0x800, 0x10000 };
	if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	*len = need + 1;
	return cp;
}

bool utf8_valid(const char *s, size_t n)
{
	size_t len;
	for (size_t i = 0; i < n; i += len)
		if (next_cp((const unsigned char *)s + i, n - i, &len) < 0x20 || !len)
			return false;
	return true;
}

static bool put_ch(char ch, char *out, size_t outsz, size_t *k)
{
	if (*k + 1 >= outsz)
		return false;
	out[(*k)++] = ch;
	return true;
}

bool imap_mutf7_encode(const char *utf8, size_t n, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t k = 0, i = 0;
	if (outsz == 0)
		return false;
	while (i < n) {
		if (s[i] >= 0x20 && s[i] <= 0x7E) {
			if (!put_ch((char)s[i], out, outsz, &k) || (s[i] == '&' && !put_ch('-', out, outsz, &k)))
				return false;
			i++;
			continue;
		}
		if (!put_ch('&', out, outsz, &k))
			return false;
		unsigned bits = 0, nbits = 0;
		while (i < n && !(s[i] >= 0x20 && s[i] <= 0x7E)) {
			size_t len;
			unsigned cp = next_cp(s + i, n - i, &len);
			if (!len || cp < 0x20)
				return false;   /* invalid UTF-8 or a control character */
			i += len;
			unsigned units[2] = { cp, 0 };
			size_t nu = 1;
			if (cp >= 0x10000) {
				units[0] = 0xD800 + ((cp - 0x10000) >> 10);
				units[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
				nu = 2;
			}
			for (size_t u = 0; u < nu; u++) {
				bits = (bits << 16) | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (!put_ch(b64[(bits >> nbits) & 0x3F], out, outsz, &k))
						return false;
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits && !put_ch(b64[(bits << (6 - nbits)) & 0x3F], out, outsz, &k))
			return false;
		if (!put_ch('-', out, outsz, &k))
			return false;
	}
	out[k] = '\0';
	return true;
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
	"Dec" };

static int month_of(const char *s)
{
	for (int m = 0; m < 12; m++)
		if (strncasecmp(s, months[m], 3) == 0)
			return m;
	return -1;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static bool valid_day(int y, int m, int d)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (d < 1 || d > mdays[m])
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return !(m == 1 && d == 29 && !leap);
}

/* date-text = date-day "-" date-month "-" date-year */
bool imap_parse_date(const char *s, size_t n, time_t *out)
{
	char tmp[16];
	if (n < 10 || n > 11)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	int d, y, used = 0;
	char mon[4];
	if (sscanf(tmp, "%2d-%3c-%4d%n", &d, mon, &y, &used) != 3 || (size_t)used != n || tmp[n - 5] != '-')
		return false;
	mon[3] = '\0';
	int m = month_of(mon);
	if (m < 0 || y < 1900 || !valid_day(y, m, d) || tmp[0] < '0' || tmp[0] > '9')
		return false;
	*out = (time_t)(days_from_civil(y, (unsigned)m + 1, (unsigned)d) * 86400);
	return true;
}

/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE */
bool imap_parse_datetime(const char *s, size_t n, time_t *out)
{
	char tmp[32];
	if (n != 26)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (tmp[0] == ' ')
		tmp[0] = '0';
	int d, y, hh, mm, ss, zh, zm, used = 0;
	char mon[4], sign;
	if (sscanf(tmp, "%2d-%3c-%4d %2d:%2d:%2d %c%2d%2d%n", &d, mon, &y, &hh, &mm, &ss, &sign, &zh, &zm, &used) != 9 ||
	    used != 26 || tmp[2] != '-' || tmp[6] != '-' || (sign != '+' && sign != '-'))
		return false;
	mon[3] = '\0';
	int m = month_of(mon);
	if (m < 0 || y < 1900 || !valid_day(y, m, d) || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59 || hh < 0 ||
	    mm < 0 || ss < 0 || zh < 0 || zm < 0)
		return false;
	long long t = days_from_civil(y, (unsigned)m + 1, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
	long long off = (zh * 60 + zm) * 60;
	*out = (time_t)(sign == '+' ? t - off : t + off);
	return true;
}
