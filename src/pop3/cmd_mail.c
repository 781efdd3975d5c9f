/* cmd_mail.c - the POP3 TRANSACTION state (RFC 1939 §5): STAT, LIST, UIDL, RETR,
 * TOP, DELE, RSET, QUIT and its UPDATE state; the streaming of long responses; the
 * maildrop's life; and the store's Maildir as a maildrop. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/internal.h"
#include "store/mailbox.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/text.h"

/* --- life of the maildrop --------------------------------------------------- */

static void stream_end(struct pop3_session *s)
{
	if (s->st.kind == STREAM_MSG && s->st.msg)
		s->ops->msg_close(s->st.msg);
	memset(&s->st, 0, sizeof(s->st));
}

void pop3_maildrop_close(struct pop3_session *s)
{
	stream_end(s);
	if (s->mb)
		s->ops->close(s->mb);
	s->mb = NULL;
	s->ops = NULL;
	free(s->deleted);
	s->deleted = NULL;
	s->count = 0;
	s->n_deleted = 0;
}

/* --- streaming -------------------------------------------------------------- */

/* Stored bytes -> the wire: LF -> CRLF, "." at a line start doubled (RFC 1939 §3),
 * TOP's cut after the header and body_lines lines (RFC 1939 §7). */
static size_t encode(struct pop3_session *s, const char *p, size_t n)
{
	struct stream *t = &s->st;
	char ob[2 * READ_CHUNK];
	size_t o = 0, i;
	for (i = 0; i < n && !t->cut; i++) {
		char c = p[i];
		if (t->at_line_start && c == '.')
			ob[o++] = '.';
		if (c == '\n' && !t->prev_cr) {
			ob[o++] = '\r';
			t->octets++;
		}
		ob[o++] = c;
		t->octets++;
		t->prev_cr = c == '\r';
		t->at_line_start = c == '\n';
		if (c != '\n') {
			if (c != '\r')
				t->line_empty = false;
			continue;
		}
		if (t->body_lines >= 0) {
			if (t->in_header) {
				if (t->line_empty) {
					t->in_header = false;
					if (t->body_lines == 0)
						t->cut = true;
				}
			} else if (++t->lines_sent >= t->body_lines) {
				t->cut = true;
			}
		}
		t->line_empty = true;
	}
	buf_append(&s->out, ob, o);
	return i;
}

static void stream_finish(struct pop3_session *s)
{
	if (s->st.kind == STREAM_MSG && !s->st.at_line_start)
		buf_append(&s->out, "\r\n", 2);   /* the last line had no line end */
	buf_append(&s->out, ".\r\n", 3);
	if (s->st.kind == STREAM_MSG) {
		log_event(LOG_DEBUG, "pop3_sent", "conn=%llu msg=%zu octets=%" PRIu64 "%s", (unsigned long long)s->info.conn_id,
			s->st.index + 1, s->st.octets, s->st.body_lines >= 0 ? " top=yes" : "");
	}
	stream_end(s);
}

static void pump_msg(struct pop3_session *s)
{
	while (s->out.len < POP3_PUMP_TARGET) {
		ssize_t r = s->st.cut ? 0 : s->ops->msg_read(s->st.msg, s->scratch, READ_CHUNK);
		if (r < 0 || (size_t)r > READ_CHUNK) {
			/* Half a message has gone out: closing without the final "." is the only
			 * way to tell the client (RFC 1939 has no mid-response error). */
			log_event(LOG_ERR, "pop3_read_failed", "conn=%llu user=%s msg=%zu sent=%" PRIu64,
				(unsigned long long)s->info.conn_id, s->login ? s->login : "-", s->st.index + 1, s->st.octets);
			pop3_close(s);
			return;
		}
		if (r == 0) {
			stream_finish(s);
			return;
		}
		encode(s, s->scratch, (size_t)r);
	}
}

static void pump_list(struct pop3_session *s)
{
	while (s->out.len < POP3_PUMP_TARGET) {
		if (s->st.next >= s->count) {
			stream_finish(s);
			return;
		}
		size_t i = s->st.next++;
		if (s->deleted[i])
			continue;
		if (s->st.kind == STREAM_LIST)
			buf_printf(&s->out, "%zu %" PRIu64 "\r\n", i + 1, s->ops->size(s->mb, i));
		else
			buf_printf(&s->out, "%zu %s\r\n", i + 1, s->ops->uid(s->mb, i));
	}
}

void pop3_session_pump(struct pop3_session *s)
{
	switch (s->st.kind) {
	case STREAM_MSG: pump_msg(s); break;
	case STREAM_LIST:
	case STREAM_UIDL: pump_list(s); break;
	case STREAM_NONE: break;
	}
}

bool pop3_session_streaming(const struct pop3_session *s)
{
	return s->st.kind != STREAM_NONE;
}

/* --- message numbers -------------------------------------------------------- */

/* A message number argument: false after replying when it is not one we can use. */
static bool msg_arg(struct pop3_session *s, const struct pop3_span *a, size_t *index)
{
	uint64_t n;
	if (!pop3_parse_number(a, &n) || n == 0 || n > s->count) {
		char q[64];
		quote_for_reply(q, sizeof(q), a->p, a->n, POP3_QUOTE_SHOWN);
		pop3_reply(s, P_NO_SUCH_MSG, q);
		return false;
	}
	if (s->deleted[n - 1]) {
		pop3_reply(s, P_MSG_DELETED, (size_t)n);
		return false;
	}
	*index = (size_t)(n - 1);
	return true;
}

/* QUIT: in TRANSACTION, the UPDATE state (RFC 1939 §6). */
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	if (s->state != ST_TRANS) {
		pop3_reply(s, P_BYE, s->hostname);
		pop3_close(s);
		return;
	}
	size_t removed = 0;
	char err[300] = "";
	bool ok = true;
	if (s->n_deleted)
		ok = s->ops->expunge(s->mb, s->deleted, &removed, err, sizeof(err));
	log_event(ok ? LOG_INFO : LOG_ERR, "pop3_logout", "conn=%llu user=%s retrieved=%u marked=%zu deleted=%zu%s%s%s",
		(unsigned long long)s->info.conn_id, s->login, s->retrieved, s->n_deleted, removed,
		ok ? "" : " error=\"", ok ? "" : err, ok ? "" : "\"");
	if (ok)
		pop3_reply(s, P_BYE_UPDATE, s->hostname, removed, s->count - removed);
	else
		pop3_reply(s, P_UPDATE_FAILED);
	pop3_close(s);
}

/* --- TRANSACTION ------------------------------------------------------------ */

void pop3_cmd_stat(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, P_STAT, s->count - s->n_deleted, s->total_octets);
}

static void cmd_list_uidl(struct pop3_session *s, const struct pop3_command *c, bool uidl)
{
	if (c->n_args > 1 || c->too_many_args) {
		pop3_reply(s, P_SYNTAX, uidl ? "UIDL [message]" : "LIST [message]");
		pop3_bad_command(s);
		return;
	}
	if (c->n_args == 1) {
		size_t i;
		if (!msg_arg(s, &c->args[0], &i))
			return;
		if (uidl)
			pop3_reply(s, P_UIDL_ONE, i + 1, s->ops->uid(s->mb, i));
		else
			pop3_reply(s, P_LIST_ONE, i + 1, s->ops->size(s->mb, i));
		return;
	}
	if (uidl)
		pop3_reply(s, P_UIDL_ALL);
	else
		pop3_reply(s, P_LIST_ALL, s->count - s->n_deleted, s->total_octets);
	s->st.kind = uidl ? STREAM_UIDL : STREAM_LIST;
	s->st.next = 0;
	pop3_session_pump(s);
}

void pop3_cmd_list(struct pop3_session *s, const struct pop3_command *c)
{
	cmd_list_uidl(s, c, false);
}

void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	cmd_list_uidl(s, c, true);
}

static void start_message(struct pop3_session *s, size_t i, long body_lines)
{
	void *m = s->ops->msg_open(s->mb, i);
	if (!m) {
		pop3_reply(s, P_READ_FAILED, i + 1);
		log_event(LOG_ERR, "pop3_read_failed", "conn=%llu user=%s msg=%zu uid=%s", (unsigned long long)s->info.conn_id,
			s->login, i + 1, s->ops->uid(s->mb, i));
		return;
	}
	if (body_lines < 0) {
		pop3_reply(s, P_RETR, s->ops->size(s->mb, i));
		s->retrieved++;
	} else {
		pop3_reply(s, P_TOP, i + 1);
	}
	s->st = (struct stream){
		.kind = STREAM_MSG, .msg = m, .index = i, .body_lines = body_lines,
		.at_line_start = true, .in_header = true, .line_empty = true,
	};
	pop3_session_pump(s);
}

void pop3_cmd_retr(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	if (c->n_args != 1 || c->too_many_args) {
		pop3_reply(s, P_SYNTAX, "RETR message");
		pop3_bad_command(s);
		return;
	}
	if (msg_arg(s, &c->args[0], &i))
		start_message(s, i, -1);
}

void pop3_cmd_top(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	uint64_t lines;
	if (c->n_args != 2 || c->too_many_args) {
		pop3_reply(s, P_SYNTAX, "TOP message lines");
		pop3_bad_command(s);
		return;
	}
	if (!pop3_parse_number(&c->args[1], &lines)) {
		pop3_reply(s, P_SYNTAX, "TOP message lines (lines is a number, 0 or more)");
		pop3_bad_command(s);
		return;
	}
	if (msg_arg(s, &c->args[0], &i))
		start_message(s, i, lines > 0x7fffffff ? 0x7fffffff : (long)lines);
}

void pop3_cmd_dele(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	if (c->n_args != 1 || c->too_many_args) {
		pop3_reply(s, P_SYNTAX, "DELE message");
		pop3_bad_command(s);
		return;
	}
	if (!msg_arg(s, &c->args[0], &i))
		return;
	s->deleted[i] = true;
	s->n_deleted++;
	s->total_octets -= s->ops->size(s->mb, i);
	pop3_reply(s, P_DELE, i + 1);
}

void pop3_cmd_rset(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	memset(s->deleted, 0, s->count * sizeof(*s->deleted));
	s->n_deleted = 0;
	s->total_octets = 0;
	for (size_t i = 0; i < s->count; i++)
		s->total_octets += s->ops->size(s->mb, i);
	pop3_reply(s, P_RSET, s->count, s->total_octets);
}

/* --- the store's Maildir as a maildrop -------------------------------------- */

static size_t md_count(void *mb)
{
	return mailbox_count(mb);
}

static uint64_t md_size(void *mb, size_t i)
{
	return mailbox_msg(mb, i)->size;
}

static const char *md_uid(void *mb, size_t i)
{
	return mailbox_msg(mb, i)->uid;
}

static void *md_open(void *mb, size_t i)
{
	return mailbox_reader_open(mb, i);
}

static ssize_t md_read(void *r, void *p, size_t n)
{
	return mailbox_reader_read(r, p, n);
}

static void md_close_msg(void *r)
{
	struct mailbox_reader *mr = r;
	mailbox_reader_close(&mr);
}

static bool md_expunge(void *mb, const bool *deleted, size_t *removed, char *err, size_t errlen)
{
	return mailbox_expunge(mb, deleted, removed, err, errlen);
}

static void md_close(void *mb)
{
	struct mailbox *m = mb;
	mailbox_close(&m);
}

const struct pop3_maildrop_ops pop3_maildir_ops = {
	.count = md_count, .size = md_size, .uid = md_uid, .msg_open = md_open, .msg_read = md_read,
	.msg_close = md_close_msg, .expunge = md_expunge, .close = md_close,
};
