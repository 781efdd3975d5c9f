/* wrong_port.c - the port-25 trap: a mail program set up to send on an mx listener.
 *
 * An mx listener (port 25) takes mail for this server's domains from other mail
 * servers (RFC 5321); mail programs submit on the submission ports, 465 with implicit
 * TLS (RFC 8314 §3.3) or 587 with STARTTLS (RFC 6409).  Two things show a mail
 * program on the wrong port:
 *   - AUTH on an mx listener.  AUTH is never offered there (EHLO does not list it,
 *     before or after STARTTLS), so the command is answered 502 5.5.1 ("not
 *     implemented here", RFC 5321 §4.2.4; RFC 3463 X.5.1) at once: no 334 challenge,
 *     no 530 "STARTTLS first" that would invite the password after TLS on this port,
 *     and an initial response on the AUTH line is neither decoded nor logged (only
 *     the verb reaches the log).  RFC 4954 §4 (AUTH only where advertised) and RFC
 *     3207 (no credentials before TLS) stay whole: nothing is ever checked here.
 *   - A transaction from a client neither logged in nor trusted to a domain that is
 *     not ours: policy refuses it (554 5.7.1 relaying denied, policy.c); on an mx
 *     listener its hint names the submission ports instead of the generic words.
 * Both name the ports of this server's configuration (struct smtp_conn_info: the
 * listeners as bound) and log event=wrong_port with the refusal's reference, so
 * `postern explain --ref` shows the wrong port (diag/reflog.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/log.h"

bool wrong_port_applies(const struct smtp_session *s)
{
	return !s->info.submission;
}

/* "465 with SSL/TLS, or 587 with STARTTLS", from the listeners. */
static void port_words(const struct smtp_session *s, char *out, size_t outsz)
{
	unsigned tls = s->info.submissions_port, starttls = s->info.submission_port;
	if (tls && starttls)
		snprintf(out, outsz, "%u with SSL/TLS, or %u with STARTTLS", tls, starttls);
	else if (tls)
		snprintf(out, outsz, "%u with SSL/TLS", tls);
	else if (starttls)
		snprintf(out, outsz, "%u with STARTTLS", starttls);
	else
		snprintf(out, outsz, "none is configured here (ask the administrator which outgoing server to use)");
}

/* One line per trapped command; ref ties it to the refusal (diag/reflog.c). */
static void log_wrong_port(const struct smtp_session *s, const char *attempt, const char *ref)
{
	char ports[160];
	port_words(s, ports, sizeof(ports));
	log_event(LOG_INFO, "wrong_port", "conn=%llu ref=%s listener=%s port=%u client=%s attempt=%s "
		"submissions=%u submission=%u words=\"port %u is for mail from other mail servers: mail programs "
		"send on %s\"", (unsigned long long)s->info.conn_id, ref, s->listener, s->info.port, s->client_addr,
		attempt, s->info.submissions_port, s->info.submission_port, s->info.port, ports);
}

static void format_entry(char *out, size_t outsz, enum reply_id id, ...)
{
	va_list ap;
	va_start(ap, id);
	reply_vformat(out, outsz, id, ap);
	va_end(ap);
}

void wrong_port_refuse_auth(struct smtp_session *s)
{
	char ports[160], text[1024], ref[32];
	port_words(s, ports, sizeof(ports));
	format_entry(text, sizeof(text), R_AUTH_WRONG_PORT, s->info.port, ports);
	const struct reply_entry *e = reply_get(R_AUTH_WRONG_PORT);
	refusal_write_id(s, "wrong port (AUTH on an mx listener)", reply_cause_id(R_AUTH_WRONG_PORT), e->code, e->enh, text,
		ref, sizeof(ref));
	s->wrong_port_seen = true;
	log_wrong_port(s, "auth", ref);
}

void wrong_port_relay_verdict(const struct smtp_session *s, struct verdict *v)
{
	char ports[160];
	port_words(s, ports, sizeof(ports));
	format_entry(v->hint, sizeof(v->hint), R_RELAY_WRONG_PORT, s->info.port, ports);
}

void wrong_port_relay_refused(struct smtp_session *s, const char *ref)
{
	s->wrong_port_seen = true;
	log_wrong_port(s, "relay", ref);
}

void wrong_port_503_line(const struct smtp_session *s, struct buf *text)
{
	if (!s->wrong_port_seen)
		return;
	char ports[160], line[1024];
	port_words(s, ports, sizeof(ports));
	format_entry(line, sizeof(line), R_WRONG_PORT_503, s->info.port, ports);
	line[strcspn(line, "\n")] = '\0';   /* the words only: the 503 ends with its own fix */
	buf_printf(text, "%s\n", line);
}
