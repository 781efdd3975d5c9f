/* folder_names.c - IMAP folder names and their Maildir++ directories: modified
 * UTF-7 (RFC 3501 §5.1.3) as Dovecot's default layout stores them, "/" in IMAP
 * = "." on disk, INBOX = the root, and the special-use name table (RFC 6154). */
#include "store/folder_impl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* One code point from UTF-8 at *p; -1 when malformed (overlong, surrogate, > U+10FFFF). */
static long utf8_next(const unsigned char **p)
{
	const unsigned char *s = *p;
	long cp;
	int extra;
	if (s[0] < 0x80) {
		*p = s + 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0) { cp = s[0] & 0x1f; extra = 1; }
	else if ((s[0] & 0xf0) == 0xe0) { cp = s[0] & 0x0f; extra = 2; }
	else if ((s[0] & 0xf8) == 0xf0) { cp = s[0] & 0x07; extra = 3; }
	else return -1;
	for (int i = 1; i <= extra; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	static const long min[] = { 0, 0x80, 0x800, 0x10000 };
	if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*p = s + extra + 1;
	return cp;
}

static bool put(char *out, size_t outsz, size_t *n, char c)
{
	if (*n + 1 >= outsz)
		return false;
	out[(*n)++] = c;
	return true;
}

/* The pending UTF-16 units in base64 (modified: "," for "/", no padding). */
static bool flush_b64(const uint16_t *u, size_t nu, char *out, size_t outsz, size_t *n)
{
	uint32_t bits = 0;
	int nbits = 0;
	if (!put(out, outsz, n, '&'))
		return false;
	for (size_t i = 0; i < nu; i++) {
		bits = (bits << 16) | u[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			if (!put(out, outsz, n, B64[(bits >> nbits) & 0x3f]))
				return false;
		}
	}
	if (nbits > 0 && !put(out, outsz, n, B64[(bits << (6 - nbits)) & 0x3f]))
		return false;
	return put(out, outsz, n, '-');
}

bool folder_mutf7_encode(const char *utf8, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)utf8;
	size_t n = 0, nu = 0;
	uint16_t u[FOLDER_NAME_MAX * 2];
	while (*p) {
		long cp = utf8_next(&p);
		if (cp < 0x20 || cp == 0x7f)   /* malformed, or a control character */
			return false;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (nu && !flush_b64(u, nu, out, outsz, &n))
				return false;
			nu = 0;
			if (!put(out, outsz, &n, (char)cp) || (cp == '&' && !put(out, outsz, &n, '-')))
				return false;
			continue;
		}
		if (nu + 2 > sizeof(u) / sizeof(u[0]))
			return false;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			u[nu++] = (uint16_t)(0xd800 | (cp >> 10));
			u[nu++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
		} else {
			u[nu++] = (uint16_t)cp;
		}
	}
	if (nu && !flush_b64(u, nu, out, outsz, &n))
		return false;
	out[n] = '\0';
	return true;
}

static bool put_utf8(long cp, char *out, size_t outsz, size_t *n)
{
	if (cp < 0x80)
		return put(out, outsz, n, (char)cp);
	if (cp < 0x800)
		return put(out, outsz, n, (char)(0xc0 | (cp >> 6))) && put(out, outsz, n, (char)(0x80 | (cp & 0x3f)));
	if (cp < 0x10000)
		return put(out, outsz, n, (char)(0xe0 | (cp >> 12))) &&
		       put(out, outsz, n, (char)(0x80 | ((cp >> 6) & 0x3f))) && put(out, outsz, n, (char)(0x80 | (cp & 0x3f)));
	return put(out, outsz, n, (char)(0xf0 | (cp >> 18))) && put(out, outsz, n, (char)(0x80 | ((cp >> 12) & 0x3f))) &&
	       put(out, outsz, n, (char)(0x80 | ((cp >> 6) & 0x3f))) && put(out, outsz, n, (char)(0x80 | (cp & 0x3f)));
}

/* The base64 run after "&" up to "-": UTF-16 -> UTF-8. */
static bool decode_run(const char **pp, char *out, size_t outsz, size_t *n)
{
	const char *p = *pp;
	uint32_t bits = 0;
	int nbits = 0;
	long high = 0;
	size_t units = 0;
	for (; *p && *p != '-'; p++) {
		const char *d = strchr(B64, *p);
		if (!d || !*p)
			return false;
		bits = (bits << 6) | (uint32_t)(d - B64);
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		long unit = (long)((bits >> nbits) & 0xffff);
		units++;
		if (high) {
			if (unit < 0xdc00 || unit > 0xdfff)
				return false;
			unit = 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00);
			high = 0;
		} else if (unit >= 0xd800 && unit <= 0xdbff) {
			high = unit;
			continue;
		} else if (unit >= 0xdc00 && unit <= 0xdfff) {
			return false;
		}
		/* RFC 3501: printable ASCII must not be encoded; control characters are
		 * no part of a folder name. */
		if (unit <= 0x7f || !put_utf8(unit, out, outsz, n))
			return false;
	}
	if (*p != '-' || high || units == 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)))
		return false;
	*pp = p + 1;
	return true;
}

bool folder_mutf7_decode(const char *s, char *out, size_t outsz)
{
	size_t n = 0;
	while (*s) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c > 0x7e)
			return false;
		if (c != '&') {
			if (!put(out, outsz, &n, (char)c))
				return false;
			s++;
			continue;
		}
		s++;
		if (*s == '-') {
			if (!put(out, outsz, &n, '&'))
				return false;
			s++;
			continue;
		}
		/* Two runs back to back are one run spelled twice: one spelling per name. */
		if (!decode_run(&s, out, outsz, &n) || (s[0] == '&' && s[1] != '-'))
			return false;
	}
	if (n >= outsz)
		return false;
	out[n] = '\0';
	return true;
}

/* --- names and paths ---------------------------------------------------------------- */

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

/* A name a folder can have: parts separated by single "/", no "." (the separator on
 * disk), no control characters or LIST wildcards, valid UTF-8 (checked by encoding). */
static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > FOLDER_NAME_MAX || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//"))
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '.' || *p == '%' || *p == '*')
			return false;
	return true;
}

bool folder_path(const char *root, const char *name, char *path, size_t pathsz)
{
	if (is_inbox(name)) {
		int n = snprintf(path, pathsz, "%s", root);
		return n > 0 && (size_t)n < pathsz;
	}
	if (!name_valid(name))
		return false;
	char enc[FOLDER_NAME_MAX * 4 + 16];
	if (!folder_mutf7_encode(name, enc, sizeof(enc)))
		return false;
	for (char *p = enc; *p; p++)
		if (*p == '/')
			*p = '.';
	int n = snprintf(path, pathsz, "%s/.%s", root, enc);
	return n > 0 && (size_t)n < pathsz;
}

bool folder_exists(const char *root, const char *name)
{
	char path[FOLDER_PATH_LEN], cur[FOLDER_SUB_LEN];
	if (!folder_path(root, name, path, sizeof(path)))
		return false;
	snprintf(cur, sizeof(cur), "%s/cur", path);
	struct stat st;
	return stat(cur, &st) == 0 && S_ISDIR(st.st_mode);
}

static const struct {
	const char *name;
	enum folder_special special;
	const char *attr;
} SPECIAL[] = {
	{ "Sent", FOLDER_SPECIAL_SENT, "\\Sent" },
	{ "Drafts", FOLDER_SPECIAL_DRAFTS, "\\Drafts" },
	{ "Trash", FOLDER_SPECIAL_TRASH, "\\Trash" },
	{ "Junk", FOLDER_SPECIAL_JUNK, "\\Junk" },
	{ "Archive", FOLDER_SPECIAL_ARCHIVE, "\\Archive" },
};

const char *folder_special_attr(enum folder_special s)
{
	for (size_t i = 0; i < sizeof(SPECIAL) / sizeof(SPECIAL[0]); i++)
		if (SPECIAL[i].special == s)
			return SPECIAL[i].attr;
	return NULL;
}

enum folder_special folder_special_of(const char *name)
{
	for (size_t i = 0; i < sizeof(SPECIAL) / sizeof(SPECIAL[0]); i++)
		if (strcmp(SPECIAL[i].name, name) == 0)
			return SPECIAL[i].special;
	return FOLDER_SPECIAL_NONE;
}

const char *folder_special_name(size_t i)
{
	return i < sizeof(SPECIAL) / sizeof(SPECIAL[0]) ? SPECIAL[i].name : NULL;
}
