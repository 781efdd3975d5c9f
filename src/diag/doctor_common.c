/* doctor_common.c - what the steps of `postern doctor` share: the names of ports,
 * steps and modes, recording a step's result and the verdict, connecting with the
 * run's limits, and the choices every step makes the same way (the TLS name, the
 * best port, the certificate check). */
#include "diag/doctor.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diag/doctor_internal.h"
#include "diag/explain.h"

const unsigned doctor_slot_names[SLOTS] = { 587, 465, 26, 25 };   /* order of preference */

const char *const doctor_step_names[STEP_COUNT] = {
	"", "name resolves", "ports answer", "TLS and certificate", "EHLO capabilities",
	"login", "sender (MAIL FROM)", "relaying and recipient (RCPT)", "test message",
	"POP3 (login, UIDL, mailbox size)",
};

const unsigned doctor_pslot_names[PSLOTS] = { 995, 110 };   /* order of preference */

const char *const doctor_mode_names[] = { "unknown", "none", "STARTTLS", "SSL/TLS" };

struct slot *doctor_slot_by_name(struct doctor *d, unsigned name)
{
	for (int i = 0; i < SLOTS; i++)
		if (d->slots[i].name == name)
			return &d->slots[i];
	return NULL;
}

struct pslot *doctor_pslot_by_name(struct doctor *d, unsigned name)
{
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].name == name)
			return &d->pslots[i];
	return NULL;
}

void doctor_step_set(struct doctor *d, enum doctor_step s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	d->steps[s].status = status;
	vsnprintf(d->steps[s].detail, sizeof(d->steps[s].detail), fmt, ap);
	va_end(ap);
}

/* The first failure decides the verdict. */
bool doctor_fail(struct doctor *d, enum doctor_step s, const char *cause, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(d->verdict)];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->steps[s].status != S_FAIL)
		doctor_step_set(d, s, S_FAIL, "%s", msg);
	if (s == STEP_POP3)
		d->pop.cause = cause;
	if (d->failed)
		return false;      /* a later failure (POP3 after SMTP) does not change the verdict */
	memcpy(d->verdict, msg, sizeof(d->verdict));
	d->failed = s;
	d->cause_id = cause;
	return false;
}

/* The cause a reply names, by the knowledge base; `fallback` when it has none. */
const char *doctor_reply_cause(struct doctor *d, const struct wire_reply *r, const char *fallback)
{
	struct explain_result res;
	explain_match(d->kb, r->lines, strlen(r->lines), &res);
	return res.known ? res.causes[0]->id : fallback;
}

uint64_t doctor_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds left of the run's total time (UINT_MAX when it has none, 0 when it is up). */
static unsigned time_left_ms(const struct doctor *d)
{
	if (!d->deadline_ms)
		return UINT_MAX;
	uint64_t now = doctor_now_ms();
	return now >= d->deadline_ms ? 0 : (unsigned)(d->deadline_ms - now);
}

/* One command line; `shown` is what the transcript shows instead (a masked password).
 * The reply's wait is cut to what is left of the run's total time. */
bool doctor_send_line(struct doctor *d, struct net_client *p, const char *line, const char *shown)
{
	char err[160];
	unsigned left = time_left_ms(d);
	if (left == 0)
		return false;
	net_client_set_io_ms(p, left < d->popts.io_ms ? left : d->popts.io_ms);
	return net_client_write_line(p, line, shown, err, sizeof(err));
}

/* Connect to the server's port, in the doctor's words when it fails; the limits are
 * cut to what is left of the run's total time. */
struct net_client *doctor_connect(struct doctor *d, unsigned port, enum net_status *st, char *err, size_t errsz)
{
	char why[256];
	unsigned left = time_left_ms(d);
	if (left == 0) {
		*st = NET_TIMEOUT;
		snprintf(err, errsz, "not tried: the test's total time (%u s) was used up", d->total_ms / 1000u);
		return NULL;
	}
	struct net_client_opts o = d->popts;
	o.connect_ms = left < o.connect_ms ? left : o.connect_ms;
	o.io_ms = left < o.io_ms ? left : o.io_ms;
	struct net_client *p = net_client_open(d->server, port, &o, st, why, sizeof(why));
	if (!p)
		snprintf(err, errsz, "%s", *st == NET_TIMEOUT ? "no answer (connection timed out)"
			: strncmp(why, "connect: ", 9) == 0 ? why + 9 : why);
	return p;
}

void doctor_first_line(const char *text, char *out, size_t outsz)
{
	snprintf(out, outsz, "%.*s", (int)strcspn(text, "\n"), text);
}

const char *doctor_tls_name(const struct doctor *d)
{
	return d->tls_name ? d->tls_name : d->server;
}

struct slot *doctor_best_slot(struct doctor *d)
{
	for (int i = 0; i < SLOTS; i++)
		if (d->slots[i].enabled && d->slots[i].open && d->slots[i].mode != MODE_UNKNOWN)
			return &d->slots[i];
	return NULL;
}

/* The certificate seen on `port` (spoken in `mode`): false after doctor_fail() at `step`; else
 * `note` describes it and *warn says a problem was let through by --insecure. */
bool doctor_check_cert_at(struct doctor *d, enum doctor_step step, enum mode mode, unsigned port,
	const struct net_cert *c, char *note, size_t notesz, bool *warn)
{
	char what[700];
	snprintf(what, sizeof(what), "certificate %s, issued by %s, valid until %s", c->subject,
		c->self_signed ? "itself (self-signed)" : c->issuer, c->not_after);
	int st = d->insecure ? S_WARN : S_FAIL;
	const char *cause = NULL, *why = NULL;
	if (c->expired || c->not_yet_valid) {
		cause = "certificate_expired";
		why = c->expired ? "has expired" : "is not valid yet";
	} else if (!c->chain_ok) {
		cause = "certificate_untrusted";
		why = c->self_signed ? "is self-signed, so no mail program trusts it" : "is not trusted";
	} else if (!c->name_ok) {
		cause = "certificate_name_mismatch";
		why = "is not for the name";
	}
	*warn = false;
	if (!cause) {
		snprintf(note, notesz, "%s on port %u, %s %s: %.300s", doctor_mode_names[mode], port, c->protocol, c->cipher, what);
		return true;
	}
	if (st == S_WARN) {
		*warn = true;
		snprintf(note, notesz, "the certificate %s (%s), ignored because of --insecure: %.300s", why, cause, what);
		return true;
	}
	return doctor_fail(d, step, cause, "The server's certificate %s%s%s (%s; %s).", why,
		strcmp(cause, "certificate_name_mismatch") == 0 ? " " : "",
		strcmp(cause, "certificate_name_mismatch") == 0 ? doctor_tls_name(d) : "", what, c->verify_error);
}

struct pslot *doctor_pop_best(struct doctor *d)
{
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].enabled && d->pslots[i].mode != MODE_UNKNOWN)
			return &d->pslots[i];
	return NULL;
}
