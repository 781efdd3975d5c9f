/* mime_envelope.c - the IMAP ENVELOPE (RFC 3501 §7.4.2) of a message:
 * date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to and
 * message-id, with address structures (name adl mailbox host) and groups.
 * Pure: no I/O.
 *
 * What Dovecot does, and so do we (tests/integration/test_mime_oracle.py):
 *   - the LAST field of each name counts, but the address fields of every
 *     field of the name are joined; a missing one is NIL; sender and
 *     reply-to default to from (RFC 3501 §7.4.2);
 *   - date, in-reply-to and message-id are the raw field bodies with CR and
 *     LF removed, subject and display names are text for people (white
 *     space runs made one space); RFC 2047 words stay encoded;
 *   - addresses are parsed leniently: a display name's words are joined by
 *     one space and unquoted; with no display name, a comment is the name;
 *     an empty name is NIL; a missing domain is "MISSING_DOMAIN", a missing
 *     local part "MISSING_MAILBOX", a broken angle-addr "SYNTAX_ERROR" (and
 *     the field is not read further); a group is (NIL NIL "name" NIL) before
 *     its members and (NIL NIL NIL NIL) after them (RFC 3501 §7.4.2);
 *   - no address at all in a field: NIL. */
#include <string.h>

#include "msg/header.h"
#include "msg/mime_internal.h"

#define MAX_ADDRESSES 10000   /* per field: more are parsed but not shown */

/* ---- A lenient RFC 5322 §3.4 lexer ---- */

struct alex {
	const unsigned char *p;
	size_t n, i;
	size_t comment_start, comment_len;   /* the last comment skipped (its inside) */
	bool have_comment;
};

enum atok { A_END, A_WORD, A_QUOTED, A_LITERAL, A_SPECIAL };

struct atoken {
	enum atok type;
	size_t start, len;   /* A_QUOTED: the inside, still escaped; A_LITERAL: with brackets */
	unsigned char ch;    /* A_SPECIAL */
};

static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("()<>[]:;@\\,.\"", c);
}

/* CFWS, remembering the last comment (nesting counted, not recursed). */
static void a_skip_cfws(struct alex *lx)
{
	size_t depth = 0, start = 0;
	while (lx->i < lx->n) {
		unsigned char c = lx->p[lx->i];
		if (depth == 0 && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
			lx->i++;
		} else if (c == '(') {
			if (depth++ == 0)
				start = lx->i + 1;
			lx->i++;
		} else if (depth == 0) {
			return;
		} else if (c == ')') {
			if (--depth == 0) {
				lx->comment_start = start;
				lx->comment_len = lx->i - start;
				lx->have_comment = true;
			}
			lx->i++;
		} else {
			lx->i += c == '\\' && lx->i + 1 < lx->n ? 2 : 1;
		}
	}
}

static struct atoken a_next(struct alex *lx)
{
	a_skip_cfws(lx);
	struct atoken t = { A_END, lx->i, 0, 0 };
	if (lx->i >= lx->n)
		return t;
	unsigned char c = lx->p[lx->i];
	if (is_atom_char(c)) {
		while (lx->i < lx->n && is_atom_char(lx->p[lx->i]))
			lx->i++;
		t.type = A_WORD;
	} else if (c == '"') {
		t.type = A_QUOTED;
		t.start = ++lx->i;
		while (lx->i < lx->n && lx->p[lx->i] != '"')
			lx->i += lx->p[lx->i] == '\\' && lx->i + 1 < lx->n ? 2 : 1;
		t.len = lx->i - t.start;
		if (lx->i < lx->n)
			lx->i++;
		return t;
	} else if (c == '[') {
		t.type = A_LITERAL;
		while (lx->i < lx->n && lx->p[lx->i] != ']')
			lx->i++;
		if (lx->i < lx->n)
			lx->i++;
	} else {
		t.type = A_SPECIAL;
		t.ch = c;
		lx->i++;
	}
	t.len = lx->i - t.start;
	return t;
}

static struct atoken a_peek(struct alex *lx)
{
	struct alex save = *lx;
	struct atoken t = a_next(lx);
	*lx = save;
	return t;
}

static bool a_is(struct atoken t, unsigned char ch)
{
	return t.type == A_SPECIAL && t.ch == ch;
}

/* Append a word (a quoted string unescaped, line ends dropped). */
static void put_word(struct buf *b, const struct alex *lx, struct atoken t)
{
	for (size_t k = t.start; k < t.start + t.len; k++) {
		unsigned char c = lx->p[k];
		if (t.type == A_QUOTED && c == '\\' && k + 1 < t.start + t.len)
			c = lx->p[++k];
		else if (c == '\r' || c == '\n')
			continue;
		if (c == '\0')
			buf_appends(b, "\xef\xbf\xbd");   /* NUL in a quoted string: U+FFFD, as Dovecot */
		else
			buf_appendc(b, (char)c);
	}
}

/* ---- Addresses, written as IMAP address structures ---- */

struct writer {
	struct buf *out;
	size_t count;
	bool stop;   /* a syntax error: the rest of the field is not read (Dovecot) */
};

static void write_address(struct writer *w, const struct buf *name, const struct buf *route, const struct buf *mailbox,
	const struct buf *domain)
{
	if (w->count++ >= MAX_ADDRESSES)
		return;
	if (w->count == 1)
		buf_appendc(w->out, '(');
	buf_appendc(w->out, '(');
	mime_imap_string_for_humans(w->out, name && name->len ? name->data : NULL, name ? name->len : 0);
	buf_appendc(w->out, ' ');
	mime_imap_nstring(w->out, route && route->len ? route->data : NULL, route ? route->len : 0);
	buf_appendc(w->out, ' ');
	mime_imap_nstring(w->out, mailbox ? (mailbox->data ? mailbox->data : "") : NULL, mailbox ? mailbox->len : 0);
	buf_appendc(w->out, ' ');
	mime_imap_nstring(w->out, domain ? (domain->data ? domain->data : "") : NULL, domain ? domain->len : 0);
	buf_appendc(w->out, ')');
}

struct addr {
	struct buf name, route, mailbox, domain;
};

static void addr_init(struct addr *a)
{
	buf_init(&a->name, 65536);
	buf_init(&a->route, 65536);
	buf_init(&a->mailbox, 65536);
	buf_init(&a->domain, 65536);
}

static void addr_free(struct addr *a)
{
	buf_free(&a->name);
	buf_free(&a->route);
	buf_free(&a->mailbox);
	buf_free(&a->domain);
}

/* phrase = 1*word / obs-phrase (words and "."), words joined by one space. */
static void read_phrase(struct alex *lx, struct buf *name)
{
	for (;;) {
		struct atoken t = a_peek(lx);
		if (t.type == A_WORD || t.type == A_QUOTED) {
			a_next(lx);
			if (name->len && name->data[name->len - 1] != '.')
				buf_appendc(name, ' ');
			put_word(name, lx, t);
		} else if (a_is(t, '.')) {
			a_next(lx);
			buf_appendc(name, '.');
		} else {
			return;
		}
	}
}

/* addr-spec = local-part ["@" domain], dots kept, quotes removed.  False
 * when what follows the local part is another word: a phrase after all. */
static bool read_addr_spec(struct alex *lx, struct addr *a)
{
	struct atoken t = a_peek(lx);
	while (t.type == A_WORD || t.type == A_QUOTED) {
		a_next(lx);
		put_word(&a->mailbox, lx, t);
		if (!a_is(a_peek(lx), '.'))
			break;
		a_next(lx);
		buf_appendc(&a->mailbox, '.');
		t = a_peek(lx);
	}
	t = a_peek(lx);
	if (!a_is(t, '@'))
		return a->mailbox.len > 0 && t.type != A_WORD && t.type != A_QUOTED;
	a_next(lx);
	for (t = a_peek(lx); t.type == A_WORD || t.type == A_LITERAL; t = a_peek(lx)) {
		a_next(lx);
		put_word(&a->domain, lx, t);
		if (!a_is(a_peek(lx), '.'))
			break;
		a_next(lx);
		buf_appendc(&a->domain, '.');
	}
	if (a->domain.len && (a->domain.data[a->domain.len - 1] == '.' ||
		(a->domain.data[0] == '[' && a->domain.data[a->domain.len - 1] != ']')))
		buf_reset(&a->domain);   /* "example." or "[192.0.2.1" is no domain: MISSING_DOMAIN, as Dovecot */
	return true;
}

/* angle-addr = "<" [obs-route] addr-spec ">"; obs-route = "@" domain *("," "@" domain) ":".
 * False: a syntax error that ends the field. */
static bool read_angle_addr(struct alex *lx, struct addr *a)
{
	if (a_is(a_peek(lx), '@')) {
		struct alex save = *lx;
		for (struct atoken t = a_peek(lx); t.type != A_END && !a_is(t, ':') && !a_is(t, '>'); t = a_peek(lx)) {
			a_next(lx);
			put_word(&a->route, lx, t);
		}
		if (a_is(a_peek(lx), ':')) {
			a_next(lx);
		} else {
			*lx = save;   /* no route after all: "<@domain>" */
			buf_reset(&a->route);
		}
	}
	/* Without a domain after "@", or without its ">", the domain is
	 * "SYNTAX_ERROR", as Dovecot says. */
	size_t at_before = a->domain.len;
	read_addr_spec(lx, a);
	bool bad = a->domain.len == at_before && lx->i > 0 && lx->p[lx->i - 1] == '@';
	if (!bad && a_is(a_peek(lx), '>')) {
		a_next(lx);
		return true;
	}
	/* A bad domain ends the field; a missing ">" only this address. */
	buf_reset(&a->domain);
	buf_appends(&a->domain, "SYNTAX_ERROR");
	return !bad;
}

static void finish_address(struct writer *w, struct addr *a)
{
	if (a->mailbox.len == 0)
		buf_appends(&a->mailbox, "MISSING_MAILBOX");
	if (a->domain.len == 0)
		buf_appends(&a->domain, "MISSING_DOMAIN");
	write_address(w, &a->name, &a->route, &a->mailbox, &a->domain);
}

/* mailbox = name-addr / addr-spec.  A phrase with neither "<" nor a valid
 * addr-spec is a name without an address; a comment after an addr-spec
 * (the last one) is its name. */
static void read_mailbox(struct alex *lx, struct writer *w)
{
	struct addr a;
	addr_init(&a);
	struct alex start = *lx;
	read_phrase(lx, &a.name);
	if (a_is(a_peek(lx), '<')) {
		a_next(lx);
		if (!read_angle_addr(lx, &a))
			w->stop = true;
	} else {
		struct alex after_phrase = *lx;
		*lx = start;
		size_t spec_start = a_peek(lx).start;
		struct addr spec;
		addr_init(&spec);
		if (read_addr_spec(lx, &spec)) {
			buf_reset(&a.name);
			a_skip_cfws(lx);
			if (lx->have_comment && lx->comment_start > spec_start)
				buf_append(&a.name, lx->p + lx->comment_start, lx->comment_len);
			buf_append(&a.mailbox, spec.mailbox.data, spec.mailbox.len);
			buf_append(&a.domain, spec.domain.data, spec.domain.len);
		} else {
			*lx = after_phrase;
		}
		addr_free(&spec);
	}
	finish_address(w, &a);
	addr_free(&a);
}

/* group = display-name ":" [group-list] ";" (RFC 5322 §3.4), at the ":":
 * (NIL NIL "name" NIL), the members, (NIL NIL NIL NIL).  Junk ends it. */
static void read_group(struct alex *lx, struct writer *w, const struct buf *name)
{
	write_address(w, NULL, NULL, name, NULL);
	for (struct atoken t = a_peek(lx); t.type != A_END; t = a_peek(lx)) {
		if (a_is(t, ';')) {
			a_next(lx);
			break;
		}
		read_mailbox(lx, w);
		t = a_peek(lx);
		if (w->stop || (!a_is(t, ',') && !a_is(t, ';')))
			break;
		if (a_is(t, ','))
			a_next(lx);
	}
	write_address(w, NULL, NULL, NULL, NULL);
}

/* address = mailbox / group */
static void read_address(struct alex *lx, struct writer *w)
{
	struct alex start = *lx;
	struct buf name;
	buf_init(&name, 65536);
	read_phrase(lx, &name);
	if (a_is(a_peek(lx), ':')) {
		a_next(lx);
		read_group(lx, w, &name);
	} else {
		*lx = start;
		read_mailbox(lx, w);
	}
	buf_free(&name);
}

/* One address-list field body into the writer.  Like Dovecot, an empty
 * element between commas is a missing address, and the field stops at the
 * first address not followed by a comma. */
static void read_address_list(struct writer *w, const char *v, size_t n)
{
	struct alex lx = { (const unsigned char *)v, n, 0, 0, 0, false };
	w->stop = false;
	while (a_peek(&lx).type != A_END) {
		read_address(&lx, w);
		if (w->stop || !a_is(a_peek(&lx), ','))
			break;
		a_next(&lx);
	}
}

/* Every field named `name` (Dovecot joins them: two Reply-To fields give
 * both lists), as one IMAP list of addresses, NIL when there is none.  A
 * NUL is no atom character (it ends the field's parse), and is U+FFFD in a
 * quoted string or comment, as in Dovecot. */
static size_t write_address_fields(struct buf *out, const char *h, size_t hl, const char *name)
{
	struct writer w = { out, 0, false };
	size_t n = msg_header_count(h, hl, name);
	for (size_t i = 0; i < n; i++) {
		const char *v;
		size_t vl;
		if (!msg_header_find_nth(h, hl, name, i, &v, &vl))
			continue;
		struct buf u;
		buf_init(&u, vl + 1);
		for (size_t k = 0; k < vl; k++)
			if (v[k] != '\n' && !(v[k] == '\r' && k + 1 < vl && v[k + 1] == '\n'))
				buf_appendc(&u, v[k] == '\r' ? ' ' : v[k]);
		read_address_list(&w, buf_cstr(&u), u.len);
		buf_free(&u);
	}
	if (w.count == 0)
		buf_appends(out, "NIL");
	else
		buf_appendc(out, ')');
	return w.count;
}

/* Sender and Reply-To default to From when absent or without an address
 * (RFC 3501 §7.4.2). */
static void write_defaulted(struct buf *out, const char *h, size_t hl, const char *name)
{
	struct buf tmp;
	buf_init(&tmp, out->max);
	if (write_address_fields(&tmp, h, hl, name) > 0)
		buf_append(out, tmp.data, tmp.len);
	else
		write_address_fields(out, h, hl, "From");
	buf_free(&tmp);
}

/* The last field named `name`: Dovecot's envelope keeps the last one. */
static char *last_field(struct mime_arena *a, const char *h, size_t hl, const char *name)
{
	return mime_header_value(a, h, hl, name, true);
}

static void nstring(struct buf *out, const char *s)
{
	mime_imap_nstring(out, s, s ? strlen(s) : 0);
}

bool mime_envelope_part(const struct mime_tree *t, const struct mime_part *msg, struct buf *out)
{
	if (!t || !msg)
		return false;
	/* Scratch copies of the field values, freed when done (the tree stays as it was). */
	struct mime_arena a = { 0 };
	const char *h = t->raw + msg->hdr_off;
	size_t hl = msg->hdr_len;
	char *subject = last_field(&a, h, hl, "Subject");
	buf_appendc(out, '(');
	nstring(out, last_field(&a, h, hl, "Date"));
	buf_appendc(out, ' ');
	mime_imap_string_for_humans(out, subject, subject ? strlen(subject) : 0);
	buf_appendc(out, ' ');
	write_address_fields(out, h, hl, "From");
	buf_appendc(out, ' ');
	/* RFC 3501 §7.4.2: sender and reply-to default to from. */
	write_defaulted(out, h, hl, "Sender");
	buf_appendc(out, ' ');
	write_defaulted(out, h, hl, "Reply-To");
	static const char *const lists[] = { "To", "Cc", "Bcc" };
	for (size_t i = 0; i < 3; i++) {
		buf_appendc(out, ' ');
		write_address_fields(out, h, hl, lists[i]);
	}
	buf_appendc(out, ' ');
	nstring(out, last_field(&a, h, hl, "In-Reply-To"));
	buf_appendc(out, ' ');
	nstring(out, last_field(&a, h, hl, "Message-ID"));
	buf_appendc(out, ')');
	mime_arena_free(&a);
	return !out->truncated;
}

bool mime_envelope(const struct mime_tree *t, struct buf *out)
{
	return mime_envelope_part(t, mime_root(t), out);
}
