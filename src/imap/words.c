/* words.c - the catalogue of the IMAP session's own refusals: each one a status
 * (NO or BAD), an RFC 5530 response code where one fits, and words that say what
 * happened, why, and what to change; every refusal carries a reference "(ref R)"
 * and is logged with it (STYLE: one writer, one catalogue). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "imap/internal.h"
#include "util/log.h"

struct wentry {
	enum imap_status st;
	const char *code;
	const char *text;   /* printf format */
};

static const struct wentry catalogue[W_COUNT] = {
	[W_UNKNOWN] = { IMAP_BAD, NULL, "Unknown command %s" },
	[W_SYNTAX] = { IMAP_BAD, NULL, "%s" },
	[W_WRONG_STATE_NOAUTH] = { IMAP_BAD, NULL, "%s needs a login first (LOGIN or AUTHENTICATE)" },
	[W_WRONG_STATE_AUTH] = { IMAP_BAD, NULL, "%s needs a selected folder: SELECT or EXAMINE one first" },
	[W_WRONG_STATE_SELECTED] = { IMAP_BAD, NULL, "%s is not allowed after logging in" },
	[W_TOO_MANY_ERRORS] = { IMAP_BAD, NULL, "Too many errors; closing the connection" },
	[W_PRIVACY_STARTTLS] = { IMAP_NO, "PRIVACYREQUIRED",
		"Login refused on an unencrypted connection: set the mail program's connection security to STARTTLS on "
		"port 143, or to SSL/TLS on port 993" },
	[W_PRIVACY_TLS_PORT] = { IMAP_NO, "PRIVACYREQUIRED",
		"Login refused on an unencrypted connection, and this port offers no STARTTLS: set the mail program's "
		"connection security to SSL/TLS on port 993 (or STARTTLS on port 143)" },
	[W_AUTH_FAILED] = { IMAP_NO, "AUTHENTICATIONFAILED",
		"Login failed: wrong user name or password (an app password works too); check both in the mail program" },
	[W_AUTH_TEMPFAIL] = { IMAP_NO, "UNAVAILABLE",
		"Login cannot be checked just now (account directory unavailable); try again in a few minutes" },
	[W_THROTTLED_ACCOUNT] = { IMAP_NO, "AUTHENTICATIONFAILED",
		"Too many failed logins as %s from your address: logging in to this account from here is blocked until %s - "
		"correct the password saved in every device that uses this account (other accounts are not blocked)" },
	[W_THROTTLED_ADDRESS] = { IMAP_NO, "UNAVAILABLE",
		"Logging in from your address is blocked until %s: there were failed logins to several different accounts "
		"from it - your own password is not the problem; try again after that time" },
	[W_AUTH_UNAVAILABLE] = { IMAP_NO, "UNAVAILABLE", "Logging in is not available on this port" },
	[W_AUTH_CANCELLED] = { IMAP_BAD, NULL, "Authentication cancelled" },
	[W_AUTH_BAD_BASE64] = { IMAP_BAD, NULL, "Authentication failed: the answer is not valid base64" },
	[W_AUTH_MALFORMED] = { IMAP_NO, "AUTHENTICATIONFAILED",
		"Authentication failed: the answer is not what the mechanism expects" },
	[W_AUTH_AUTHZID] = { IMAP_NO, "AUTHORIZATIONFAILED",
		"Authentication failed: logging in as another user (authorization identity) is not supported" },
	[W_AUTH_UNKNOWN_MECH] = { IMAP_NO, "CANNOT", "Unknown SASL mechanism %s: use PLAIN or LOGIN" },
	[W_STARTTLS_UNAVAILABLE] = { IMAP_NO, "CANNOT", "STARTTLS is not available on this port; use SSL/TLS on port 993" },
	[W_ALREADY_TLS] = { IMAP_BAD, NULL, "TLS is already active" },
	[W_ALREADY_LOGGED_IN] = { IMAP_BAD, NULL, "%s: already logged in" },
	[W_MAILDIR_TEMP] = { IMAP_NO, "UNAVAILABLE", "The mailbox cannot be opened just now (%s); try again in a few minutes" },
	[W_MAILDIR_PERM] = { IMAP_NO, "CONTACTADMIN", "The mailbox cannot be opened (%s); ask the administrator of this server" },
	[W_ENABLE_SELECTED] = { IMAP_BAD, NULL, "ENABLE is only allowed before SELECT (RFC 5161 §3.1): UNSELECT first" },
	[W_COMPRESS_METHOD] = { IMAP_BAD, NULL, "COMPRESS %.40s: unknown compression method; this server offers "
		"COMPRESS DEFLATE (RFC 4978)" },
	[W_COMPRESS_ACTIVE] = { IMAP_NO, "COMPRESSIONACTIVE", "Compression is already active on this connection "
		"(RFC 4978 §3); send COMPRESS once per connection" },
	[W_IDLE_DONE] = { IMAP_BAD, NULL, "IDLE ends with DONE alone on its line (RFC 2177)" },
	[W_SETQUOTA] = { IMAP_NO, "NOPERM",
		"Quotas are set by the administrator (postern user quota), not by the mail program" },
	[W_NOT_YET] = { IMAP_NO, "CANNOT", "%s is not available on this server yet" },
	[W_LITERAL_TOO_BIG] = { IMAP_NO, "TOOBIG", "%s" },
	/* XCLIENT: a node of the cluster hands over a login it checked (cmd_auth.c). */
	[W_XCLIENT_UNAVAILABLE] = { IMAP_NO, "AUTHENTICATIONFAILED",
		"XCLIENT is only for the nodes of a cluster handing over a login, and this server is not one; log in with "
		"LOGIN or AUTHENTICATE" },
	[W_XCLIENT_REFUSED] = { IMAP_NO, "AUTHENTICATIONFAILED",
		"XCLIENT refused: %s - it is only for the nodes of this cluster; log in with LOGIN or AUTHENTICATE" },
	/* The login was right, but the mailbox's home node cannot be reached. */
	[W_PROXY_UNAVAILABLE] = { IMAP_NO, "UNAVAILABLE",
		"Your mailbox is kept on node %s, which cannot be reached just now (%s); nothing was lost - try again in a "
		"few minutes, and if it lasts tell the administrator that node %s is down" },
};

const char *imap_next_ref(struct imap_session *s, char *out, size_t outsz)
{
	if (s->info.run_id && s->info.run_id[0])
		snprintf(out, outsz, "%s.%llu.%u", s->info.run_id, (unsigned long long)s->info.conn_id, ++s->refs);
	else
		snprintf(out, outsz, "%llu.%u", (unsigned long long)s->info.conn_id, ++s->refs);
	return out;
}

static void refuse_text(struct imap_session *s, const char *tag, enum imap_status st, const char *code, const char *text)
{
	char ref[64], q[300];
	imap_next_ref(s, ref, sizeof(ref));
	imap_reply_tagged(&s->out, tag, st, code, "%s (ref %s)", text, ref);
	log_event(LOG_INFO, "imap_refused", "conn=%llu ref=%s status=%s code=%s reason=%s", (unsigned long long)s->info.conn_id,
		ref, imap_status_word(st), code ? code : "-", log_quote(q, sizeof(q), text, strlen(text), 200));
}

void imap_refuse(struct imap_session *s, const char *tag, enum wid id, ...)
{
	const struct wentry *e = &catalogue[id];
	char text[IMAP_REPLY_TEXT_MAX];
	va_list ap;
	va_start(ap, id);
	vsnprintf(text, sizeof(text), e->text, ap);
	va_end(ap);
	refuse_text(s, tag, e->st, e->code, text);
}

void imap_refuse_parse(struct imap_session *s, const struct imap_parse_error *e)
{
	refuse_text(s, e->tag, e->no ? IMAP_NO : IMAP_BAD, e->code, e->text);
}
