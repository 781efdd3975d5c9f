/* field_drop.c - dropping header fields as the message streams past (see header.h,
 * msg_field_drop): a field named `name` whose body begins, after CFWS, with the word
 * `id` (an RFC 2045 token or quoted-string, compared ASCII case-insensitively) is left
 * out of the output, its folded lines and line end with it; every other byte passes
 * unchanged and in order.  This is how Authentication-Results fields that claim to be
 * ours are removed at receipt (RFC 8601 §5).
 *
 * Bytes of a field that might be dropped are held until its first word is known
 * (at most MSG_DROP_HOLD octets: a field whose word is still unread past that is
 * dropped, since it cannot be shown not to claim the id).  Fixed size, no allocation. */
#include "msg/header.h"

#include <string.h>

#include "msg/internal.h"

enum { D_NONE, D_HOLD, D_KEEP, D_DROP };
enum { P_NAME, P_ID };

void msg_field_drop_init(struct msg_field_drop *d, const char *name, const char *id)
{
	memset(d, 0, sizeof(*d));
	d->nlen = strlen(name) < sizeof(d->name) - 1 ? strlen(name) : sizeof(d->name) - 1;
	memcpy(d->name, name, d->nlen);
	d->idlen = strlen(id) < sizeof(d->id) - 1 ? strlen(id) : sizeof(d->id) - 1;
	memcpy(d->id, id, d->idlen);
	d->at_line_start = true;
	d->decision = D_NONE;
}

/* RFC 2045 §5.1 token characters */
static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static bool word_is_id(const struct msg_field_drop *d)
{
	if (d->word_len != d->idlen || d->idlen == 0)
		return false;
	for (size_t i = 0; i < d->idlen; i++)
		if (ascii_lower_c((unsigned char)d->word[i]) != ascii_lower_c((unsigned char)d->id[i]))
			return false;
	return true;
}

/* The held field's fate is known: out with it, or gone. */
static void settle(struct msg_field_drop *d, bool drop, msg_emit_fn emit, void *arg)
{
	if (drop) {
		d->decision = D_DROP;
		d->dropped++;
	} else {
		d->decision = D_KEEP;
		if (d->hold_len)
			emit(arg, d->hold, d->hold_len);
	}
	d->hold_len = 0;
}

/* The field ended (or the header did) while still held: a complete token word is
 * judged; anything else (no word, an unclosed quote) claims nothing. */
static void settle_at_end(struct msg_field_drop *d, msg_emit_fn emit, void *arg)
{
	if (d->decision == D_HOLD)
		settle(d, d->phase == P_ID && d->word_started && !d->in_quotes && word_is_id(d), emit, arg);
}

static void add_word(struct msg_field_drop *d, unsigned char c)
{
	if (d->word_len < sizeof(d->word))
		d->word[d->word_len] = (char)c;
	d->word_len++;   /* longer than any id: cannot match */
}

/* One byte of the authserv-id part: [CFWS] ( token / quoted-string ). */
static void id_byte(struct msg_field_drop *d, unsigned char c, msg_emit_fn emit, void *arg)
{
	if (d->escaped) {
		d->escaped = false;
		if (d->in_quotes)
			add_word(d, c);
		return;
	}
	if (d->comment_depth) {
		if (c == '\\')
			d->escaped = true;
		else if (c == '(')
			d->comment_depth++;
		else if (c == ')')
			d->comment_depth--;
		return;
	}
	if (d->in_quotes) {
		if (c == '\\')
			d->escaped = true;
		else if (c == '"')
			settle(d, word_is_id(d), emit, arg);
		else if (c != '\r' && c != '\n')
			add_word(d, c);
		return;
	}
	if (d->word_started) {
		if (is_token_char(c))
			add_word(d, c);
		else
			settle(d, word_is_id(d), emit, arg);
		return;
	}
	if (c == '(') {
		d->comment_depth = d->comment_depth < 64 ? d->comment_depth + 1 : d->comment_depth;
	} else if (c == '"') {
		d->word_started = d->in_quotes = true;
	} else if (is_token_char(c)) {
		d->word_started = true;
		add_word(d, c);
	} else if (!is_wsp(c) && c != '\r' && c != '\n') {
		settle(d, false, emit, arg);   /* ";" first: no authserv-id */
	}
}

static void name_byte(struct msg_field_drop *d, unsigned char c, msg_emit_fn emit, void *arg)
{
	if (c == ':' && d->name_pos == d->nlen) {
		d->phase = P_ID;
	} else if (!d->name_wsp && d->name_pos < d->nlen && ascii_lower_c(c) == ascii_lower_c((unsigned char)d->name[d->name_pos])) {
		d->name_pos++;
	} else if (is_wsp(c) && d->name_pos == d->nlen) {
		d->name_wsp = true;   /* RFC 5322 §4.5.3: WSP before the colon */
	} else {
		settle(d, false, emit, arg);   /* another field */
	}
}

/* A new line of the header: a continuation, the empty line, or a new field. */
static void line_start(struct msg_field_drop *d, unsigned char c, msg_emit_fn emit, void *arg)
{
	d->at_line_start = false;
	if (d->line_cr) {
		d->line_cr = false;
		if (c == '\n') {
			d->done = true;   /* CR LF alone: the header ends (RFC 5322 §2.1) */
			emit(arg, "\r\n", 2);
			return;
		}
		emit(arg, "\r", 1);   /* a bare CR opens no field we look for */
		d->decision = D_KEEP;
	} else if (is_wsp(c) && d->decision != D_NONE) {
		return;   /* a folded line of the current field: the caller goes on with it */
	} else if (c == '\r') {
		settle_at_end(d, emit, arg);
		d->line_cr = true;
		d->at_line_start = true;
		return;
	} else if (c == '\n') {
		settle_at_end(d, emit, arg);
		d->done = true;
		emit(arg, "\n", 1);
		return;
	} else {
		settle_at_end(d, emit, arg);
		d->decision = D_HOLD;
		d->phase = P_NAME;
		d->name_pos = 0;
		d->name_wsp = false;
		d->word_len = 0;
		d->word_started = d->in_quotes = d->escaped = false;
		d->comment_depth = 0;
	}
}

/* One byte that is not passed through at once. */
static void step(struct msg_field_drop *d, unsigned char c, msg_emit_fn emit, void *arg)
{
	if (d->at_line_start) {
		line_start(d, c, emit, arg);
		if (d->done || d->at_line_start)
			return;
	}
	if (c == '\n')
		d->at_line_start = true;
	switch (d->decision) {
	case D_HOLD:
		if (d->hold_len >= sizeof(d->hold)) {
			settle(d, true, emit, arg);   /* its first word unread past the bound */
			return;
		}
		d->hold[d->hold_len++] = (char)c;
		if (d->phase == P_NAME)
			name_byte(d, c, emit, arg);
		else
			id_byte(d, c, emit, arg);
		return;
	case D_DROP:
		return;
	default:
		emit(arg, (const char *)&c, 1);
		return;
	}
}

void msg_field_drop_feed(struct msg_field_drop *d, const char *p, size_t n, msg_emit_fn emit, void *arg)
{
	size_t run = 0;   /* p[run, i) passes through unchanged */
	for (size_t i = 0; i < n; i++) {
		if (d->done) {
			if (i > run)
				emit(arg, p + run, i - run);
			emit(arg, p + i, n - i);
			return;
		}
		unsigned char c = (unsigned char)p[i];
		bool pass = !d->at_line_start && (d->decision == D_KEEP || d->decision == D_NONE);
		if (pass) {
			if (c == '\n')
				d->at_line_start = true;
			continue;
		}
		if (i > run)
			emit(arg, p + run, i - run);
		step(d, c, emit, arg);
		run = i + 1;
	}
	if (n > run)
		emit(arg, p + run, n - run);
}

void msg_field_drop_finish(struct msg_field_drop *d, msg_emit_fn emit, void *arg)
{
	if (d->line_cr) {
		emit(arg, "\r", 1);
		d->line_cr = false;
	}
	settle_at_end(d, emit, arg);
	d->done = true;
}
