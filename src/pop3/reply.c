/* reply.c - the POP3 catalogue and the one function every status line goes
 * through: "+OK text" or "-ERR [CODE] text (ref R)" (RFC 2449 §8 response codes,
 * RFC 3206), bounded to 512 octets; refusals carry a reference and are logged. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pop3/internal.h"
#include "util/buf.h"
#include "util/log.h"

struct pentry {
	bool ok;
	const char *code;   /* RFC 2449 §8 response code, or NULL */
	const char *text;   /* printf format */
};

static const struct pentry catalogue[P_COUNT] = {
	[P_GREETING] = { true, NULL, "%s Postern POP3 server ready" },
	[P_BYE] = { true, NULL, "%s Postern POP3 server signing off" },
	[P_BYE_UPDATE] = { true, NULL, "%s Postern POP3 server signing off (%zu messages deleted, %zu left)" },
	[P_UPDATE_FAILED] = { false, "SYS/TEMP",
		"Some deleted messages could not be removed and are still on the server; they can be deleted again next time" },
	[P_USER_OK] = { true, NULL, "Send the password with PASS" },
	[P_LOGGED_IN] = { true, NULL, "Logged in: %zu messages (%" PRIu64 " octets)" },
	[P_CAPA] = { true, NULL, "Capability list follows" },
	[P_NOOP] = { true, NULL, "Still here" },
	[P_STAT] = { true, NULL, "%zu %" PRIu64 },
	[P_LIST_ONE] = { true, NULL, "%zu %" PRIu64 },
	[P_LIST_ALL] = { true, NULL, "%zu messages (%" PRIu64 " octets)" },
	[P_UIDL_ONE] = { true, NULL, "%zu %s" },
	[P_UIDL_ALL] = { true, NULL, "Unique-ID listing follows" },
	[P_RETR] = { true, NULL, "%" PRIu64 " octets" },
	[P_TOP] = { true, NULL, "Top of message %zu follows" },
	[P_DELE] = { true, NULL, "Message %zu marked for deletion (removed when you QUIT)" },
	[P_RSET] = { true, NULL, "Deletion marks removed: %zu messages (%" PRIu64 " octets)" },
	[P_STLS_OK] = { true, NULL, "Begin TLS negotiation" },
	[P_AUTH_MECHS] = { true, NULL, "SASL mechanisms follow" },
	[P_AUTH_FAILED] = { false, "AUTH",
		"Login failed: wrong user name or password (an app password works too); check both in the mail program" },
	[P_AUTH_TEMPFAIL] = { false, "SYS/TEMP",
		"Login cannot be checked just now (account directory unavailable); try again in a few minutes" },
	/* RFC 3206 §4: [AUTH] when the credentials are the problem (a device keeps
	 * sending a wrong password for this account), [SYS/TEMP] when they are not
	 * (the address is blocked for failures to other accounts). */
	[P_AUTH_THROTTLED_ACCOUNT] = { false, "AUTH",
		"Too many failed logins as %s from your address: logging in to this account from here is blocked until %s - "
		"correct the password saved in every device that uses this account (other accounts are not blocked)" },
	[P_AUTH_THROTTLED_ADDRESS] = { false, "SYS/TEMP",
		"Logging in from your address is blocked until %s: there were failed logins to several different accounts "
		"from it - your own password is not the problem; try again after that time" },
	[P_PLAINTEXT_STLS] = { false, "AUTH",
		"Login refused on an unencrypted connection: set the mail program's connection security to STARTTLS (STLS) on port 110, or to SSL/TLS on port 995" },
	[P_PLAINTEXT_NO_TLS] = { false, "AUTH",
		"Login refused on an unencrypted connection, and this port offers no STLS: set the mail program's connection security to SSL/TLS on port 995 (or STARTTLS on port 110)" },
	[P_AUTH_UNAVAILABLE] = { false, NULL, "Logging in is not available on this port" },
	[P_AUTH_CANCELLED] = { false, NULL, "Authentication cancelled" },
	[P_AUTH_BAD_BASE64] = { false, NULL, "Authentication failed: the answer is not valid base64" },
	[P_AUTH_MALFORMED] = { false, NULL, "Authentication failed: the answer is not what the mechanism expects" },
	[P_AUTH_AUTHZID] = { false, "AUTH", "Authentication failed: logging in as another user (authorization identity) is not supported" },
	[P_AUTH_UNKNOWN_MECH] = { false, NULL, "Unknown SASL mechanism %s: use PLAIN or LOGIN" },
	[P_AUTH_LINE_TOO_LONG] = { false, NULL, "Authentication failed: the answer is too long" },
	[P_IN_USE] = { false, "IN-USE",
		"The mailbox is open in another POP3 session; close the other mail program or device (or wait for it to finish) and try again" },
	[P_MAILBOX_TEMP] = { false, "SYS/TEMP", "The mailbox cannot be opened just now; try again in a few minutes" },
	[P_MAILBOX_PERM] = { false, "SYS/PERM", "The mailbox cannot be opened; ask the administrator of this server" },
	[P_NEED_USER] = { false, NULL, "Send USER first, then PASS" },
	[P_NEED_LOGIN] = { false, NULL, "%s needs a login first (USER and PASS, or AUTH)" },
	[P_LOGGED_IN_ALREADY] = { false, NULL, "%s is not allowed after logging in" },
	[P_UNKNOWN] = { false, NULL, "Unknown command: %s" },
	[P_EMPTY] = { false, NULL, "Empty command line" },
	[P_BAD_BYTES] = { false, NULL, "Command refused: it holds control characters" },
	[P_LINE_TOO_LONG] = { false, NULL, "Command line too long (at most %zu octets)" },
	[P_TOO_MANY_ERRORS] = { false, NULL, "Too many errors; closing the connection" },
	[P_SYNTAX] = { false, NULL, "Syntax: %s" },
	[P_NO_SUCH_MSG] = { false, NULL, "There is no message %s" },
	[P_MSG_DELETED] = { false, NULL, "Message %zu is marked for deletion (RSET removes the marks)" },
	[P_READ_FAILED] = { false, "SYS/TEMP", "Message %zu cannot be read just now; try again later" },
	[P_STLS_UNAVAILABLE] = { false, NULL, "STLS is not available on this port; use SSL/TLS on port 995" },
	[P_ALREADY_TLS] = { false, NULL, "TLS is already active" },
	[P_APOP] = { false, NULL, "APOP is not supported: use USER and PASS (or AUTH) over TLS" },
	[P_IDLE_TIMEOUT] = { false, NULL, "Disconnected for inactivity (%u seconds); nothing was deleted" },
	[P_SHUTDOWN] = { false, "SYS/TEMP", "Server shutting down; nothing was deleted - connect again in a minute" },
	/* Deadlines of the transport (pop3_session_deadline). */
	[P_DEADLINE_LINE] = { false, NULL,
		"Disconnected: a command line took more than %llu seconds to arrive; nothing was deleted - the connection is very slow, or the client sends a byte at a time" },
	[P_DEADLINE_LOGIN] = { false, NULL,
		"Disconnected: no login within %llu seconds of connecting; nothing was deleted - check the mail program's account settings" },
	[P_DEADLINE_SESSION] = { false, "SYS/TEMP",
		"Disconnected: session longer than %llu seconds; nothing was deleted - connect again for the rest" },
	/* XCLIENT: a node of the cluster hands over a login it checked (cmd_auth.c). */
	[P_XCLIENT_UNAVAILABLE] = { false, "AUTH",
		"XCLIENT is only for the nodes of a cluster handing over a login, and this server is not one; log in with USER and PASS, or AUTH" },
	[P_XCLIENT_REFUSED] = { false, "AUTH",
		"XCLIENT refused: %s - it is only for the nodes of this cluster; log in with USER and PASS, or AUTH" },
	/* The login was right, but the mailbox's home node cannot be reached. */
	[P_PROXY_UNAVAILABLE] = { false, "SYS/TEMP",
		"Your mailbox is kept on node %s, which cannot be reached just now (%s); nothing was lost - try again in a few minutes, and if it lasts tell the administrator that node %s is down" },
	/* Refusals of a connection, before any greeting (pop3_refusal_line). */
	[P_CONN_BUSY] = { false, "SYS/TEMP",
		"%s Too many connections just now; nothing was lost - your mail program will check again in a few minutes" },
	[P_CONN_ADDRESS_BUSY] = { false, "SYS/TEMP",
		"%s Too many connections from your address (limit %llu): close other mail programs or devices on your network that check mail here, or try again later" },
	[P_CONN_RESERVED] = { false, "SYS/TEMP",
		"%s Server nearly full: the last connections are kept for clients that have none open - close other connections from your address, or try again later" },
	[P_CONN_TLS_EXPECTED] = { false, "SYS/PERM",
		"%s No POP3 in plaintext here: this port expects TLS from the first byte (RFC 8314) - set the mail program's connection security to SSL/TLS for this port, or STARTTLS on port 110" },
};

/* "+OK text" or "-ERR [CODE] text (ref R)" (no reference when ref is NULL), at most
 * 512 octets with CRLF, no control bytes. */
static void status_line(struct buf *out, const struct pentry *e, const char *text, const char *ref)
{
	char line[RESPONSE_MAX + 64];
	int n;
	if (e->ok)
		n = snprintf(line, sizeof(line), "+OK %s", text);
	else
		n = snprintf(line, sizeof(line), "-ERR %s%s%s%s%s%s%s", e->code ? "[" : "", e->code ? e->code : "",
			e->code ? "] " : "", text, ref ? " (ref " : "", ref ? ref : "", ref ? ")" : "");
	size_t len = n < 0 ? 0 : (size_t)n;
	if (len > RESPONSE_MAX - 2)
		len = RESPONSE_MAX - 2;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	buf_append(out, line, len);
	buf_append(out, "\r\n", 2);
}

/* Every status line of a session goes through here; refusals carry a reference
 * and are logged with it. */
void pop3_reply(struct pop3_session *s, enum pid id, ...)
{
	const struct pentry *e = &catalogue[id];
	char text[RESPONSE_MAX];
	va_list ap;
	va_start(ap, id);
	vsnprintf(text, sizeof(text), e->text, ap);
	va_end(ap);
	char ref[48] = "";
	if (!e->ok && s->info.run_id && s->info.run_id[0])   /* unique across restarts (util/id.h) */
		snprintf(ref, sizeof(ref), "%s.%llu.%u", s->info.run_id, (unsigned long long)s->info.conn_id, ++s->refs);
	else if (!e->ok)
		snprintf(ref, sizeof(ref), "%llu.%u", (unsigned long long)s->info.conn_id, ++s->refs);
	status_line(&s->out, e, text, e->ok ? NULL : ref);
	if (!e->ok) {
		char q[300];
		log_event(LOG_INFO, "pop3_refused", "conn=%llu ref=%s code=%s reason=%s", (unsigned long long)s->info.conn_id,
			ref, e->code ? e->code : "-", log_quote(q, sizeof(q), text, strlen(text), 200));
	}
}

void pop3_relay_line(struct pop3_session *s, const char *line)
{
	size_t len = strlen(line);
	if (len > RESPONSE_MAX - 2)
		len = RESPONSE_MAX - 2;
	size_t start = s->out.len;
	buf_append(&s->out, line, len);
	for (size_t i = start; i < s->out.len; i++)
		if ((unsigned char)s->out.data[i] < 0x20 || s->out.data[i] == 0x7f)
			s->out.data[i] = '?';
	buf_append(&s->out, "\r\n", 2);
	if (strncmp(line, "+OK", 3) != 0) {
		char q[300];
		log_event(LOG_INFO, "pop3_refused", "conn=%llu ref=- code=relayed reason=%s", (unsigned long long)s->info.conn_id,
			log_quote(q, sizeof(q), line, len, 200));
	}
}

void pop3_refusal_line(struct buf *out, enum pop3_refusal why, const char *hostname, unsigned long long limit)
{
	char text[RESPONSE_MAX];
	switch (why) {
	case POP3_REFUSE_BUSY:
		snprintf(text, sizeof(text), catalogue[P_CONN_BUSY].text, hostname);
		status_line(out, &catalogue[P_CONN_BUSY], text, NULL);
		break;
	case POP3_REFUSE_ADDRESS_BUSY:
		snprintf(text, sizeof(text), catalogue[P_CONN_ADDRESS_BUSY].text, hostname, limit);
		status_line(out, &catalogue[P_CONN_ADDRESS_BUSY], text, NULL);
		break;
	case POP3_REFUSE_RESERVED:
		snprintf(text, sizeof(text), catalogue[P_CONN_RESERVED].text, hostname);
		status_line(out, &catalogue[P_CONN_RESERVED], text, NULL);
		break;
	case POP3_REFUSE_TLS_EXPECTED:
		snprintf(text, sizeof(text), catalogue[P_CONN_TLS_EXPECTED].text, hostname);
		status_line(out, &catalogue[P_CONN_TLS_EXPECTED], text, NULL);
		break;
	}
}
