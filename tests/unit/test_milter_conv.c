/* test_milter_conv.c - milter/conv.c driven against a real filter: one session
 * (connect, HELO, then transactions of MAIL, RCPT..., DATA, the headers, EOH, the
 * body in chunks, EOM), each step's outcome printed as a line that
 * tests/integration/test_milter_conv.py reads.  Not a unit test by itself: the
 * Python test starts the filter (pymilter, or a raw socket that misbehaves) and
 * passes the socket and the scenario in the environment:
 *   MILTER_SOCKET       unix:/path or inet:127.0.0.1:PORT (required)
 *   MILTER_COMMAND_MS   MILTER_CONTENT_MS   MILTER_CONNECT_MS   (5000 by default)
 *   MILTER_MESSAGE      a message file (CR LF), else a small built-in one
 *   MILTER_RCPTS        recipients, comma-separated ("<bob@example.net>")
 *   MILTER_CHUNK        body chunk size (65535)
 *   MILTER_TRANSACTIONS how many transactions on the one connection (1)
 *   MILTER_BODY_OUT     where the replacement body goes (REPLBODY chunks)
 * Output lines: "open ...", "step=NAME verdict=V ms=N [reply=...] [failure=...]",
 * "mod kind=K index=I name=N value=V", "body_replaced=yes", "quarantine=REASON",
 * "metrics observations=N" (postern_milter_duration_seconds{filter="test"}'s count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter.h"
#include "util/metrics.h"

static const char builtin_message[] =
	"Received: from client.example ([192.0.2.1])\r\n"
	"\tby mx.example.org with ESMTPS id 1A2B3C\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: milter test\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"this is the body.\r\n";

static const char *const verdict_names[] = { "continue", "accept", "reject", "tempfail", "discard", "quarantine",
	"replycode", "skip", "failed" };
static const char *const mod_names[] = { "add_header", "insert_header", "change_header", "add_rcpt", "del_rcpt",
	"change_from" };

static unsigned env_ms(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/* One line per value, newlines shown as \n so that a line stays a line. */
static void print_escaped(const char *key, const char *s)
{
	printf(" %s=", key);
	for (; s && *s; s++) {
		if (*s == '\n')
			fputs("\\n", stdout);
		else if (*s == '\r')
			fputs("\\r", stdout);
		else if (*s == '\t')
			fputs("\\t", stdout);
		else
			putchar(*s);
	}
}

static void report(const char *step, enum milter_verdict v, const struct milter_outcome *out)
{
	printf("step=%s verdict=%s ms=%lu", step, verdict_names[v], out->elapsed_ms);
	if (v == MILTER_REPLYCODE) {
		print_escaped("reply", out->reply);
		printf(" code=%d enh=%s", out->reply_code, out->reply_enh[0] ? out->reply_enh : "-");
	}
	if (v == MILTER_FAILED)
		print_escaped("failure", out->failure);
	printf("\n");
	for (size_t i = 0; i < out->n_mods; i++) {
		printf("mod kind=%s index=%u", mod_names[out->mods[i].kind], out->mods[i].index);
		print_escaped("name", out->mods[i].name);
		print_escaped("value", out->mods[i].value ? out->mods[i].value : "(none)");
		printf("\n");
	}
	if (out->body_replaced)
		printf("body_replaced=yes\n");
	if (v == MILTER_QUARANTINE)
		printf("quarantine=%s\n", out->reason);
	fflush(stdout);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(16u << 20);
	*len = buf ? fread(buf, 1, (16u << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[*len] = '\0';
	return buf;
}

static bool body_to_file(void *arg, const void *p, size_t n)
{
	FILE *f = arg;
	return f && fwrite(p, 1, n, f) == n;
}

/* ACCEPT: the filter wants nothing more this transaction; the steps go on (and
 * answer ACCEPT without asking it), as the SMTP transaction does. */
static bool goes_on(enum milter_verdict v)
{
	return v == MILTER_CONTINUE || v == MILTER_ACCEPT;
}

/* The header fields (each value as the bytes after "Name:", folds kept), EOH,
 * then the body in chunks.  False when the transaction ended early. */
static bool send_content(struct milter_conn *m, char *msg, size_t len, size_t chunk, struct milter_outcome *out)
{
	char *p = msg, *end = msg + len;
	enum milter_verdict v;
	while (p < end && !(p[0] == '\r' && p + 1 < end && p[1] == '\n')) {
		char *eol = strstr(p, "\r\n");
		while (eol && (eol[2] == ' ' || eol[2] == '\t'))
			eol = strstr(eol + 2, "\r\n");
		if (!eol)
			eol = end;
		char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon)
			return false;
		*colon = '\0';
		char saved = *eol;
		*eol = '\0';
		v = milter_header(m, p, colon + 1, out);
		*eol = saved;
		*colon = ':';
		if (!goes_on(v)) {
			report("header", v, out);
			return false;
		}
		p = eol + 2;
	}
	p = p + 2 <= end ? p + 2 : end;
	v = milter_eoh(m, NULL, 0, out);
	report("eoh", v, out);
	if (!goes_on(v))
		return false;
	unsigned chunks = 0;
	for (; p < end; p += chunk) {
		size_t n = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
		v = milter_body(m, p, n, out);
		chunks++;
		if (v == MILTER_SKIP) {
			printf("step=body verdict=skip chunks=%u\n", chunks);
			break;
		}
		if (!goes_on(v)) {
			report("body", v, out);
			return false;
		}
	}
	printf("body_chunks=%u\n", chunks);
	return true;
}

static const struct milter_macro connect_macros[] = {
	{ "j", "mx.example.org" }, { "{daemon_name}", "postern" }, { "{client_addr}", "192.0.2.1" },
	{ "{client_name}", "client.example" }, { "_", "client.example [192.0.2.1]" },
};
static const struct milter_macro helo_macros[] = { { "{tls_version}", "TLSv1.3" },
	{ "{cipher}", "TLS_AES_256_GCM_SHA384" } };
static const struct milter_macro mail_macros[] = { { "{auth_type}", "PLAIN" }, { "{auth_authen}", "alice" },
	{ "{mail_addr}", "alice@example.org" }, { "{mail_mailer}", "esmtp" } };
static const struct milter_macro eom_macros[] = { { "i", "1A2B3C" } };

static bool transaction(struct milter_conn *m, char *msg, size_t len, struct milter_outcome *out)
{
	const char *mail_argv[] = { "<alice@example.org>", "SIZE=100" };
	enum milter_verdict v = milter_mail(m, mail_macros, 4, mail_argv, 2, out);
	report("mail", v, out);
	if (!goes_on(v))
		return false;
	char rcpts[1024];
	snprintf(rcpts, sizeof(rcpts), "%s", getenv("MILTER_RCPTS") ? getenv("MILTER_RCPTS") : "<bob@example.net>");
	unsigned accepted = 0;
	for (char *save = NULL, *r = strtok_r(rcpts, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
		const char *argv[] = { r };
		struct milter_macro mac[] = { { "{rcpt_addr}", r }, { "{rcpt_mailer}", "esmtp" } };
		v = milter_rcpt(m, mac, 2, argv, 1, out);
		report("rcpt", v, out);
		accepted += goes_on(v);
		if (v == MILTER_FAILED)
			return false;
	}
	if (!accepted)
		return false;
	v = milter_data(m, NULL, 0, out);
	report("data", v, out);
	if (!goes_on(v))
		return false;
	size_t chunk = env_ms("MILTER_CHUNK", 65535);
	if (!send_content(m, msg, len, chunk ? chunk : 1, out))
		return false;
	const char *bo = getenv("MILTER_BODY_OUT");
	FILE *f = bo ? fopen(bo, "wb") : NULL;
	v = milter_eom(m, eom_macros, 1, body_to_file, f, out);
	if (f)
		fclose(f);
	report("eom", v, out);
	return true;
}

int main(void)
{
	const char *sock = getenv("MILTER_SOCKET");
	if (!sock) {
		fprintf(stderr, "MILTER_SOCKET not set: run by tests/integration/test_milter_conv.py\n");
		return 77;
	}
	struct milter_filter_conf fc = { .connect_ms = env_ms("MILTER_CONNECT_MS", 5000),
		.command_ms = env_ms("MILTER_COMMAND_MS", 5000), .content_ms = env_ms("MILTER_CONTENT_MS", 5000) };
	snprintf(fc.name, sizeof(fc.name), "test");
	snprintf(fc.socket, sizeof(fc.socket), "%s", sock);
	size_t len = sizeof(builtin_message) - 1;
	char *msg = getenv("MILTER_MESSAGE") ? read_file(getenv("MILTER_MESSAGE"), &len) : strdup(builtin_message);
	struct milter_outcome out = { 0 };
	struct milter_conn *m = milter_open(&fc, NULL, &out);
	if (!m) {
		report("open", MILTER_FAILED, &out);
		free(msg);
		return 0;
	}
	unsigned version, actions, protocol;
	milter_negotiated(m, &version, &actions, &protocol);
	printf("open version=%u actions=0x%x protocol=0x%x ms=%lu\n", version, actions, protocol, out.elapsed_ms);
	enum milter_verdict v = milter_connect(m, connect_macros, 5, "client.example", '4', 40000, "192.0.2.1", &out);
	report("connect", v, &out);
	if (v == MILTER_CONTINUE || v == MILTER_ACCEPT) {
		v = milter_helo(m, helo_macros, 2, "client.example", &out);
		report("helo", v, &out);
	}
	unsigned n = env_ms("MILTER_TRANSACTIONS", 1);
	for (unsigned i = 0; i < n && v != MILTER_FAILED; i++) {
		if (!transaction(m, msg, len, &out))
			milter_abort(m);
		v = out.verdict;
	}
	milter_outcome_clear(&out);
	milter_close(&m);
	printf("metrics observations=%llu\n", (unsigned long long)metrics_histogram_count(METRIC_MILTER_DURATION, "test"));
	printf("closed\n");
	free(msg);
	return 0;
}
