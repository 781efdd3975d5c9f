/* parse.c - the IMAP command parser's incremental scanner (lines, literals {N} and
 * {N+}, RFC 3501 §7.5 and RFC 7888) and the command's arena.  The scanner only
 * collects one whole command (line segments and literal octets, inline as
 * "{N}\r\n" + octets) within its bounds; parse_lex.c's lexer and parse_cmd.c then
 * read it in one go, so no syntax rule depends on how the bytes were split. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/parse_internal.h"
#include "util/buf.h"

struct ablock {
	struct ablock *next;
	size_t used, cap;
	max_align_t align[];
};

struct imap_arena {
	struct ablock *head;
};

enum scan_state { S_LINE, S_LITERAL, S_SKIP, S_RAWLINE, S_RAWSKIP };

struct imap_parser {
	enum scan_state state;
	struct buf acc;             /* the command so far */
	size_t seg_start;           /* where the current line segment starts in acc */
	size_t line_octets;         /* non-literal octets of this command */
	size_t literal_octets;      /* literal octets of this command */
	size_t literal_left;
	bool in_quote, escaped;
	bool utf8;
	struct imap_cmd *cmd;       /* after IMAP_EV_COMMAND */
	struct imap_parse_error err;
	const char *line; size_t line_len;
};

#define ACC_MAX (IMAP_LINE_MAX + IMAP_APPEND_LITERAL_MAX + 64)

void *arena_alloc(struct imap_arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 4000 ? n : 4000;
		struct ablock *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *r = (char *)a->head->align + a->head->used;
	a->head->used += n;
	memset(r, 0, n);
	return r;
}

char *arena_strndup(struct imap_arena *a, const char *s, size_t n)
{
	char *r = arena_alloc(a, n + 1);
	if (r) {
		if (n)
			memcpy(r, s, n);
		r[n] = '\0';
	}
	return r;
}

void imap_cmd_free(struct imap_cmd **c)
{
	if (!c || !*c)
		return;
	struct ablock *b = (*c)->arena ? (*c)->arena->head : NULL;
	while (b) {
		struct ablock *n = b->next;
		free(b);
		b = n;
	}
	free((*c)->arena);
	free(*c);
	*c = NULL;
}

struct imap_parser *imap_parser_new(void)
{
	struct imap_parser *p = calloc(1, sizeof(*p));
	if (p)
		buf_init(&p->acc, ACC_MAX);
	return p;
}

void imap_parser_free(struct imap_parser **p)
{
	if (!p || !*p)
		return;
	imap_cmd_free(&(*p)->cmd);
	buf_free(&(*p)->acc);
	free(*p);
	*p = NULL;
}

void imap_parser_set_utf8(struct imap_parser *p, bool utf8_accept)
{
	p->utf8 = utf8_accept;
}

void imap_parser_expect_line(struct imap_parser *p)
{
	p->state = S_RAWLINE;
	buf_reset(&p->acc);
}

struct imap_cmd *imap_parser_take(struct imap_parser *p)
{
	struct imap_cmd *c = p->cmd;
	p->cmd = NULL;
	return c;
}

const struct imap_parse_error *imap_parser_error(const struct imap_parser *p)
{
	return &p->err;
}

const char *imap_parser_line(const struct imap_parser *p, size_t *n)
{
	*n = p->line_len;
	return p->line ? p->line : "";
}

bool imap_parser_pending(const struct imap_parser *p)
{
	return p->state != S_LITERAL && (p->acc.len > 0 || p->state == S_SKIP || p->state == S_RAWSKIP);
}

bool imap_parser_in_literal(const struct imap_parser *p)
{
	return p->state == S_LITERAL;
}

static void reset_command(struct imap_parser *p)
{
	buf_reset(&p->acc);
	p->seg_start = 0;
	p->line_octets = p->literal_octets = p->literal_left = 0;
	p->in_quote = p->escaped = false;
}

/* The tag at the start of the collected text, when it is one (for the reply). */
static void tag_of(const char *s, size_t n, char *tag, size_t tagsz)
{
	size_t i = 0;
	tag[0] = '\0';
	while (i < n && i + 1 < tagsz) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\+", ch))
			break;
		i++;
	}
	if (i == 0 || i >= n || s[i] != ' ')
		return;
	memcpy(tag, s, i);
	tag[i] = '\0';
}

static enum imap_event error_event(struct imap_parser *p, bool no, const char *code, bool fatal, const char *text)
{
	tag_of(p->acc.data ? p->acc.data : "", p->acc.len, p->err.tag, sizeof(p->err.tag));
	p->err.no = no;
	p->err.code = code;
	p->err.fatal = fatal;
	snprintf(p->err.text, sizeof(p->err.text), "%s", text);
	return IMAP_EV_ERROR;
}

/* Is the command being collected an APPEND (the only one that may carry a large
 * literal)? */
static bool collecting_append(const struct imap_parser *p)
{
	const char *s = p->acc.data ? p->acc.data : "";
	const char *sp = memchr(s, ' ', p->acc.len);
	if (!sp)
		return false;
	size_t rest = p->acc.len - (size_t)(sp + 1 - s);
	return rest >= 7 && strncasecmp(sp + 1, "APPEND ", 7) == 0;
}

/* A literal announced at the end of the segment s[0..n): {N} or {N+}.  Returns the
 * position of '{', or -1. */
static long literal_marker(const char *s, size_t n, uint64_t *size, bool *nonsync)
{
	if (n < 3 || s[n - 1] != '}')
		return -1;
	size_t i = n - 1;
	*nonsync = false;
	if (s[i - 1] == '+') {
		*nonsync = true;
		i--;
	}
	size_t digits_end = i;
	while (i > 0 && isdigit((unsigned char)s[i - 1]))
		i--;
	if (i == digits_end || i == 0 || s[i - 1] != '{')
		return -1;
	*size = digits_end - i > 18 ? UINT64_MAX : strtoull(s + i, NULL, 10);   /* too large either way */
	return (long)(i - 1);
}

static enum imap_event end_of_command(struct imap_parser *p)
{
	enum imap_event ev = imap_parse_command(p, p->acc.data ? p->acc.data : "", p->acc.len);
	reset_command(p);
	return ev;
}

/* A line segment ended (LF seen and not yet stored): a literal follows, or the
 * command is complete. */
static enum imap_event end_of_segment(struct imap_parser *p)
{
	const char *seg = p->acc.data ? p->acc.data + p->seg_start : "";
	size_t n = p->acc.len - p->seg_start;
	if (n && seg[n - 1] == '\r') {
		p->acc.len--;
		n--;
	}
	uint64_t size;
	bool nonsync;
	long at = p->in_quote ? -1 : literal_marker(seg, n, &size, &nonsync);
	p->in_quote = p->escaped = false;
	if (at < 0) {
		if (p->acc.len == 0) {
			reset_command(p);
			return error_event(p, false, NULL, false, "Empty command line: send a tag, a command and its arguments");
		}
		return end_of_command(p);
	}
	uint64_t limit = collecting_append(p) ? IMAP_APPEND_LITERAL_MAX : IMAP_LITERAL_MAX;
	if (size > limit || p->literal_octets + size > limit) {
		char text[200];
		snprintf(text, sizeof(text), "Literal of %llu octets refused: at most %llu octets %s",
			(unsigned long long)size, (unsigned long long)limit,
			limit == IMAP_APPEND_LITERAL_MAX ? "for a message (APPEND)" : "in a command other than APPEND");
		enum imap_event ev = error_event(p, !nonsync, "TOOBIG", nonsync, text);
		reset_command(p);
		return ev;
	}
	buf_append(&p->acc, "\r\n", 2);
	p->literal_left = (size_t)size;
	p->literal_octets += (size_t)size;
	p->state = S_LITERAL;
	if (size == 0) {
		p->state = S_LINE;
		p->seg_start = p->acc.len;
	}
	return nonsync ? IMAP_EV_MORE : IMAP_EV_CONTINUE;
}

/* Quote tracking, so that "{5}" inside a quoted string is not a literal. */
static void track_quote(struct imap_parser *p, char ch)
{
	if (p->escaped)
		p->escaped = false;
	else if (p->in_quote && ch == '\\')
		p->escaped = true;
	else if (ch == '"')
		p->in_quote = !p->in_quote;
}

static size_t feed_line(struct imap_parser *p, const char *d, size_t n, enum imap_event *ev)
{
	size_t i = 0;
	while (i < n) {
		char ch = d[i++];
		if (ch == '\n') {
			*ev = end_of_segment(p);
			return i;
		}
		if (++p->line_octets > IMAP_LINE_MAX) {
			p->state = S_SKIP;
			return i;
		}
		track_quote(p, ch);
		buf_appendc(&p->acc, ch);
	}
	return i;
}

static size_t feed_skip(struct imap_parser *p, const char *d, size_t n, enum imap_event *ev, bool raw)
{
	const char *lf = memchr(d, '\n', n);
	char text[160];
	if (!lf) {
		/* A line that never ends is not a client's mistake but a flood (or an inflated
		 * COMPRESS bomb): skipping it for ever would only burn CPU, so it ends the session. */
		p->line_octets += n;
		if (p->line_octets <= IMAP_SKIP_MAX)
			return n;
		snprintf(text, sizeof(text), "Command line too long: over %u octets without a line end", IMAP_SKIP_MAX);
		*ev = error_event(p, false, raw ? NULL : "LIMIT", true, text);
		if (raw)
			p->err.tag[0] = '\0';
		return n;
	}
	snprintf(text, sizeof(text), "Command line too long: at most %u octets (literals not counted)", IMAP_LINE_MAX);
	*ev = error_event(p, false, raw ? NULL : "LIMIT", false, text);
	if (raw)
		p->err.tag[0] = '\0';
	reset_command(p);
	p->state = S_LINE;
	return (size_t)(lf - d) + 1;
}

static size_t feed_raw(struct imap_parser *p, const char *d, size_t n, enum imap_event *ev)
{
	const char *lf = memchr(d, '\n', n);
	size_t take = lf ? (size_t)(lf - d) : n;
	if (p->acc.len + take > IMAP_LINE_MAX) {
		p->state = S_RAWSKIP;
		buf_reset(&p->acc);
		return take;
	}
	buf_append(&p->acc, d, take);
	if (!lf)
		return n;
	if (p->acc.len && p->acc.data[p->acc.len - 1] == '\r')
		p->acc.len--;
	p->line = p->acc.data ? p->acc.data : "";
	p->line_len = p->acc.len;
	p->state = S_LINE;
	*ev = IMAP_EV_LINE;
	p->acc.len = 0;     /* the line stays readable until the next feed */
	return take + 1;
}

size_t imap_parser_feed(struct imap_parser *p, const void *data, size_t n, enum imap_event *ev)
{
	const char *d = data;
	size_t used = 0;
	*ev = IMAP_EV_MORE;
	imap_cmd_free(&p->cmd);
	while (used < n && *ev == IMAP_EV_MORE) {
		switch (p->state) {
		case S_LINE:
			used += feed_line(p, d + used, n - used, ev);
			break;
		case S_LITERAL: {
			size_t take = n - used < p->literal_left ? n - used : p->literal_left;
			buf_append(&p->acc, d + used, take);
			used += take;
			p->literal_left -= take;
			if (p->literal_left == 0) {
				p->state = S_LINE;
				p->seg_start = p->acc.len;
			}
			break;
		}
		case S_SKIP:
		case S_RAWSKIP:
			used += feed_skip(p, d + used, n - used, ev, p->state == S_RAWSKIP);
			break;
		case S_RAWLINE:
			used += feed_raw(p, d + used, n - used, ev);
			break;
		}
	}
	return used;
}

static const char *const names[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = "CAPABILITY", [IMAP_CMD_NOOP] = "NOOP", [IMAP_CMD_LOGOUT] = "LOGOUT",
	[IMAP_CMD_ID] = "ID", [IMAP_CMD_COMPRESS] = "COMPRESS", [IMAP_CMD_STARTTLS] = "STARTTLS",
	[IMAP_CMD_AUTHENTICATE] = "AUTHENTICATE", [IMAP_CMD_LOGIN] = "LOGIN", [IMAP_CMD_ENABLE] = "ENABLE",
	[IMAP_CMD_SELECT] = "SELECT", [IMAP_CMD_EXAMINE] = "EXAMINE", [IMAP_CMD_CREATE] = "CREATE",
	[IMAP_CMD_DELETE] = "DELETE", [IMAP_CMD_RENAME] = "RENAME", [IMAP_CMD_SUBSCRIBE] = "SUBSCRIBE",
	[IMAP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE", [IMAP_CMD_LIST] = "LIST", [IMAP_CMD_LSUB] = "LSUB",
	[IMAP_CMD_STATUS] = "STATUS", [IMAP_CMD_APPEND] = "APPEND", [IMAP_CMD_NAMESPACE] = "NAMESPACE",
	[IMAP_CMD_IDLE] = "IDLE", [IMAP_CMD_GETQUOTA] = "GETQUOTA", [IMAP_CMD_GETQUOTAROOT] = "GETQUOTAROOT",
	[IMAP_CMD_SETQUOTA] = "SETQUOTA", [IMAP_CMD_CHECK] = "CHECK", [IMAP_CMD_CLOSE] = "CLOSE",
	[IMAP_CMD_UNSELECT] = "UNSELECT", [IMAP_CMD_EXPUNGE] = "EXPUNGE", [IMAP_CMD_SEARCH] = "SEARCH",
	[IMAP_CMD_FETCH] = "FETCH", [IMAP_CMD_STORE] = "STORE", [IMAP_CMD_COPY] = "COPY", [IMAP_CMD_MOVE] = "MOVE",
	[IMAP_CMD_XCLIENT] = "XCLIENT",
};

const char *imap_cmd_label(enum imap_cmd_name n)
{
	return n > IMAP_CMD_NONE && n < IMAP_CMD_COUNT ? names[n] : "?";
}

static enum imap_cmd_name lookup_name(const char *s, size_t n)
{
	for (int i = IMAP_CMD_NONE + 1; i < IMAP_CMD_COUNT; i++)
		if (strlen(names[i]) == n && strncasecmp(names[i], s, n) == 0)
			return (enum imap_cmd_name)i;
	return IMAP_CMD_NONE;
}

static bool parse_tag_and_name(struct lex *l, struct imap_parse_error *err)
{
	const char *s;
	size_t n;
	if (!lex_atom(l, true, &s, &n, "a tag") || memchr(s, '+', n)) {
		snprintf(err->text, sizeof(err->text), "Every command starts with a tag (letters or digits, e.g. \"a1\") "
			"and a space (RFC 3501, client commands)");
		return false;
	}
	if (n > IMAP_TAG_MAX) {
		snprintf(err->text, sizeof(err->text), "Tag too long: at most %d octets", IMAP_TAG_MAX);
		return false;
	}
	memcpy(l->c->tag, s, n);
	l->c->tag[n] = '\0';
	memcpy(err->tag, s, n);
	err->tag[n] = '\0';
	if (!lex_sp(l) || !lex_atom(l, false, &s, &n, "a command name")) {
		snprintf(err->text, sizeof(err->text), "Expected a command name after the tag");
		return false;
	}
	if (n == 3 && strncasecmp(s, "UID", 3) == 0) {
		l->c->uid = true;
		if (!lex_sp(l) || !lex_atom(l, false, &s, &n, "a command name")) {
			snprintf(err->text, sizeof(err->text), "UID must be followed by FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE");
			return false;
		}
	}
	l->c->name = lookup_name(s, n);
	enum imap_cmd_name m = l->c->name;
	if (l->c->uid && m != IMAP_CMD_FETCH && m != IMAP_CMD_SEARCH && m != IMAP_CMD_STORE && m != IMAP_CMD_COPY &&
	    m != IMAP_CMD_MOVE && m != IMAP_CMD_EXPUNGE) {
		snprintf(err->text, sizeof(err->text), "UID must be followed by FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE");
		return false;
	}
	if (m == IMAP_CMD_NONE) {
		char shown[48];
		snprintf(err->text, sizeof(err->text), "Unknown command \"%s\"",
			lex_near(&(struct lex){ .p = s, .end = s + n }, shown, sizeof(shown)));
		return false;
	}
	return true;
}

enum imap_event imap_parse_command(struct imap_parser *p, const char *text, size_t n)
{
	imap_cmd_free(&p->cmd);
	memset(&p->err, 0, sizeof(p->err));
	struct imap_cmd *c = calloc(1, sizeof(*c));
	struct imap_arena *a = calloc(1, sizeof(*a));
	if (!c || !a) {
		free(c);
		free(a);
		snprintf(p->err.text, sizeof(p->err.text), "Out of memory");
		p->err.fatal = true;
		p->err.code = "SERVERBUG";
		return IMAP_EV_ERROR;
	}
	c->arena = a;
	struct lex l = { .p = text, .end = text + n, .c = c, .utf8 = p->utf8 };
	if (!parse_tag_and_name(&l, &p->err)) {
		imap_cmd_free(&c);
		return IMAP_EV_ERROR;
	}
	if (!parse_arguments(&l) || !lex_end(&l)) {
		snprintf(p->err.text, sizeof(p->err.text), "%s%s: %s", c->uid ? "UID " : "", imap_cmd_label(c->name),
			l.err[0] ? l.err : "syntax error");
		imap_cmd_free(&c);
		return IMAP_EV_ERROR;
	}
	p->cmd = c;
	return IMAP_EV_COMMAND;
}
