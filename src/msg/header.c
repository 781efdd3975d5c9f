/* header.c - RFC 5322 header fields (see header.h): finding a field in a header
 * block, and finding it as the message streams past.  Pure: no I/O, no allocation.
 * Address lists (From:) are parsed in address_list.c. */
#include "msg/header.h"

#include <string.h>

#include "msg/internal.h"

/* ---- Fields in a header block (RFC 5322 §2.2) ---- */

/* End of the field whose line starts at i: the first line end not followed by
 * WSP (§2.2.3: a fold is a line end followed by WSP), or len. */
static size_t field_end(const unsigned char *p, size_t len, size_t i)
{
	while (i < len) {
		size_t e = eol_len(p, len, i);
		if (e == 0)
			i++;
		else if (i + e < len && is_wsp(p[i + e]))
			i += e;
		else
			return i;
	}
	return len;
}

/* Does the field in p[start, end) have the name `name` (nlen > 0 bytes, ASCII
 * case-insensitive, §1.2.2)?  §2.2: field-name ":"; §4.5 (obs-optional) allows
 * WSP before the colon.  On a match, *body is the index after the colon. */
static bool field_named(const unsigned char *p, size_t start, size_t end, const char *name, size_t nlen,
	size_t *body)
{
	if (end - start <= nlen)
		return false;
	for (size_t k = 0; k < nlen; k++)
		if (ascii_lower_c(p[start + k]) != ascii_lower_c((unsigned char)name[k]))
			return false;
	size_t i = start + nlen;
	while (i < end && is_wsp(p[i]))
		i++;
	if (i >= end || p[i] != ':')
		return false;
	*body = i + 1;
	return true;
}

/* Skip the WSP and folds that open a field body; within [i, end) every line
 * end is a fold. */
static size_t skip_leading_fws(const unsigned char *p, size_t end, size_t i)
{
	for (;;) {
		if (i < end && is_wsp(p[i]))
			i++;
		else if (eol_len(p, end, i) > 0)
			i += eol_len(p, end, i);
		else
			return i;
	}
}

/* Walk the fields of the header block up to the empty line (§2.1) or len.
 * With `count` set, counts the fields named `name`; otherwise stops at the
 * first and returns its body.  A line starting with WSP at the top of the
 * block continues no field and is skipped; later ones are part of the field
 * above them, so a name is never matched inside a continuation line. */
static bool walk_fields(const char *headers, size_t len, const char *name, size_t skip, size_t *count,
	const char **value, size_t *value_len)
{
	const unsigned char *p = (const unsigned char *)headers;
	size_t nlen = name ? strlen(name) : 0;
	if (!p || nlen == 0)
		return false;
	size_t i = 0;
	while (i < len && eol_len(p, len, i) == 0) {
		size_t end = field_end(p, len, i);
		size_t body;
		if (!is_wsp(p[i]) && field_named(p, i, end, name, nlen, &body)) {
			if (!count && skip == 0) {
				if (end == len && end > body && p[end - 1] == '\r')
					end--;   /* a block cut between CR and LF */
				body = skip_leading_fws(p, end, body);
				*value = headers + body;
				*value_len = end - body;
				return true;
			}
			if (count)
				(*count)++;
			else
				skip--;
		}
		i = end + eol_len(p, len, end);
	}
	return false;
}

bool msg_header_find(const char *headers, size_t len, const char *name, const char **value, size_t *value_len)
{
	return walk_fields(headers, len, name, 0, NULL, value, value_len);
}

bool msg_header_find_nth(const char *headers, size_t len, const char *name, size_t index, const char **value,
	size_t *value_len)
{
	return walk_fields(headers, len, name, index, NULL, value, value_len);
}

size_t msg_header_count(const char *headers, size_t len, const char *name)
{
	size_t n = 0;
	walk_fields(headers, len, name, 0, &n, NULL, NULL);
	return n;
}

/* ---- The same fields, found as the message streams past ---- */

enum { SCAN_LINE_START, SCAN_IN_LINE };
enum { FIELD_NONE, FIELD_NAME, FIELD_NAME_WSP, FIELD_OURS, FIELD_OTHER };

void msg_field_scan_init(struct msg_field_scan *sc, const char *name)
{
	memset(sc, 0, sizeof(*sc));
	size_t n = strlen(name);
	if (n >= sizeof(sc->name))
		n = sizeof(sc->name) - 1;
	memcpy(sc->name, name, n);
	sc->nlen = n;
	sc->state = SCAN_LINE_START;
	sc->field = FIELD_NONE;
}

static void scan_keep(struct msg_field_scan *sc, const unsigned char *p, size_t n)
{
	if (!sc->capturing)
		return;
	if (n > MSG_FIELD_VALUE_MAX - sc->value_len) {
		n = MSG_FIELD_VALUE_MAX - sc->value_len;
		sc->value_truncated = true;
	}
	memcpy(sc->value + sc->value_len, p, n);
	sc->value_len += n;
}

/* A line end (LF, or CR LF) of length n. */
static void scan_line_end(struct msg_field_scan *sc, size_t n)
{
	if (sc->state == SCAN_LINE_START) {
		/* An empty line: the header is over (§2.1). */
		sc->done = true;
		sc->capturing = false;
		return;
	}
	/* A name not yet followed by its colon does not continue on the next line. */
	if (sc->field == FIELD_NAME || sc->field == FIELD_NAME_WSP)
		sc->field = FIELD_OTHER;
	sc->state = SCAN_LINE_START;
	sc->eol_len = n;
	sc->eol[0] = n == 2 ? '\r' : '\n';
	sc->eol[1] = '\n';
}

/* The name matched and its colon came: a field named `name` begins. */
static void scan_field_named(struct msg_field_scan *sc)
{
	sc->field = FIELD_OURS;
	if (++sc->count == 1)
		sc->capturing = true;
}

static void scan_byte(struct msg_field_scan *sc, unsigned char c)
{
	if (sc->state == SCAN_LINE_START) {
		sc->state = SCAN_IN_LINE;
		if (is_wsp(c)) {
			/* A fold (§2.2.3): the field above goes on, line end included. */
			scan_keep(sc, sc->eol, sc->eol_len);
			scan_keep(sc, &c, 1);
			return;
		}
		sc->capturing = false;   /* only the first field named `name` is kept */
		sc->field = FIELD_NAME;
		sc->name_pos = 0;
	}
	switch (sc->field) {
	case FIELD_NAME:
		if (sc->name_pos < sc->nlen && ascii_lower_c(c) == ascii_lower_c((unsigned char)sc->name[sc->name_pos])) {
			sc->name_pos++;
		} else if (sc->name_pos == sc->nlen && is_wsp(c)) {
			sc->field = FIELD_NAME_WSP;   /* §4.5 obs-optional: WSP before the colon */
		} else if (sc->name_pos == sc->nlen && c == ':') {
			scan_field_named(sc);
		} else {
			sc->field = FIELD_OTHER;
		}
		break;
	case FIELD_NAME_WSP:
		if (c == ':')
			scan_field_named(sc);
		else if (!is_wsp(c))
			sc->field = FIELD_OTHER;
		break;
	case FIELD_OURS:
		scan_keep(sc, &c, 1);
		break;
	default:
		break;
	}
}

void msg_field_scan_feed(struct msg_field_scan *sc, const char *data, size_t n)
{
	const unsigned char *p = (const unsigned char *)data;
	for (size_t i = 0; i < n && !sc->done; i++) {
		unsigned char c = p[i];
		if (sc->cr_pending) {
			sc->cr_pending = false;
			if (c == '\n') {
				scan_line_end(sc, 2);
				continue;
			}
			scan_byte(sc, '\r');   /* a CR without LF is content, as in eol_len() */
		}
		if (c == '\r')
			sc->cr_pending = true;
		else if (c == '\n')
			scan_line_end(sc, 1);
		else
			scan_byte(sc, c);
	}
}

bool msg_field_scan_value(const struct msg_field_scan *sc, const char **value, size_t *value_len)
{
	if (sc->count == 0)
		return false;
	const unsigned char *v = (const unsigned char *)sc->value;
	size_t i = skip_leading_fws(v, sc->value_len, 0);
	*value = sc->value + i;
	*value_len = sc->value_len - i;
	return true;
}
