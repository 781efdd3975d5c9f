/* reflog.c - the decision behind a reference: Postern logs every refusal as
 * `event=refused conn=C ref=R.C.N ...` (docs/operations.md), R being the run id that
 * the run's `event=started ... run=R` line names (util/id.h), so a reference is
 * unique across restarts although connection numbers start again at 1; references
 * from versions before run ids are C.N (the last match in the log wins).  The
 * connection's earlier lines (connect, tls, login, login_failed) and the listener's
 * `listening` line give the listener, client address, TLS and login state; an
 * `event=wrong_port ... ref=R` line after the refusal (the port-25 trap,
 * smtp/wrong_port.c) says the mail program was on the wrong port, and which ports
 * it should use. */
#include "diag/reflog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/common.h"
#include "diag/json.h"

#define LOG_LINE_MAX 4096
#define FIELD_MAX    512
#define LISTENERS_MAX 32

struct decision {
	char ts[64], conn[32], client[64], listener[64], role[32], tls_mode[32];
	char tls[256], login[FIELD_MAX], login_failed[FIELD_MAX];
	char cmd[32], code[8], enh[16], reason[FIELD_MAX], cause[FIELD_MAX], arg[FIELD_MAX];
	char wrong_port[FIELD_MAX];   /* the wrong_port line's words, "" without one */
	long line;
	bool found;
};

struct listener_info {
	char name[64], role[32], tls[32];
};

struct scan {
	const char *ref;
	char run[32];           /* the run id of the reference ("" for C.N) */
	char conn[32];          /* the conn id the reference belongs to */
	bool in_run;            /* the lines being read are of that run */
	struct decision cur;    /* facts gathered for that conn in the current run */
	struct decision hit;    /* snapshot at the last matching refusal */
	struct listener_info listeners[LISTENERS_MAX];
	int n_listeners;
};

bool reflog_field(const char *line, const char *key, char *out, size_t outsz)
{
	size_t kl = strlen(key);
	for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
		if ((p != line && p[-1] != ' ') || p[kl] != '=')
			continue;
		const char *v = p + kl + 1;
		size_t n = 0;
		if (*v == '"') {
			for (v++; *v && *v != '"'; v++) {
				if (*v == '\\' && (v[1] == '"' || v[1] == '\\'))
					v++;
				if (n + 1 < outsz)
					out[n++] = *v;
			}
		} else {
			while (v[n] && v[n] != ' ' && v[n] != '\n' && n + 1 < outsz) {
				out[n] = v[n];
				n++;
			}
		}
		out[n] = '\0';
		return true;
	}
	return false;
}

#define FIELD(line, key, dst) reflog_field(line, key, dst, sizeof(dst))

static void note_listener(struct scan *s, const char *line)
{
	if (s->n_listeners >= LISTENERS_MAX)
		return;
	struct listener_info *l = &s->listeners[s->n_listeners];
	if (FIELD(line, "listener", l->name)) {
		FIELD(line, "role", l->role);
		FIELD(line, "tls", l->tls);
		s->n_listeners++;
	}
}

static void note_conn_event(struct scan *s, const char *event, const char *line)
{
	struct decision *d = &s->cur;
	if (strcmp(event, "connect") == 0) {
		memset(d, 0, sizeof(*d));
		FIELD(line, "ts", d->ts);
		FIELD(line, "client", d->client);
		FIELD(line, "listener", d->listener);
	} else if (strcmp(event, "tls") == 0) {
		const char *p = strstr(line, " TLS");
		snprintf(d->tls, sizeof(d->tls), "%s", p ? p + 1 : "yes");
		d->tls[strcspn(d->tls, "\n")] = '\0';
	} else if (strcmp(event, "login") == 0) {
		char user[256] = "", mech[32] = "";
		FIELD(line, "user", user);
		FIELD(line, "mech", mech);
		snprintf(d->login, sizeof(d->login), "%s (%s)", user, mech);
	} else if (strcmp(event, "login_failed") == 0) {
		char user[256] = "", reason[200] = "";
		FIELD(line, "user", user);
		FIELD(line, "reason", reason);
		snprintf(d->login_failed, sizeof(d->login_failed), "%s: %s", user, reason);
	}
}

static void note_refusal(struct scan *s, const char *line, long lineno)
{
	struct decision d = s->cur;
	FIELD(line, "ts", d.ts);
	FIELD(line, "cmd", d.cmd);
	FIELD(line, "code", d.code);
	FIELD(line, "enh", d.enh);
	FIELD(line, "reason", d.reason);
	FIELD(line, "cause", d.cause);
	FIELD(line, "arg", d.arg);
	snprintf(d.conn, sizeof(d.conn), "%s", s->conn);
	for (int i = 0; i < s->n_listeners; i++)
		if (strcmp(s->listeners[i].name, d.listener) == 0) {
			snprintf(d.role, sizeof(d.role), "%s", s->listeners[i].role);
			snprintf(d.tls_mode, sizeof(d.tls_mode), "%s", s->listeners[i].tls);
		}
	d.line = lineno;
	d.found = true;
	s->hit = d;
}

static void scan_line(struct scan *s, const char *line, long lineno)
{
	char event[64], conn[32], ref[64];
	if (!FIELD(line, "event", event))
		return;
	if (strcmp(event, "started") == 0) {        /* a new run: connection ids start again */
		char run[32] = "";
		memset(&s->cur, 0, sizeof(s->cur));
		s->n_listeners = 0;
		s->in_run = !s->run[0] || (FIELD(line, "run", run) && strcmp(run, s->run) == 0);
		return;
	}
	if (!s->in_run)
		return;
	if (strcmp(event, "listening") == 0) {
		note_listener(s, line);
		return;
	}
	if (!FIELD(line, "conn", conn) || strcmp(conn, s->conn) != 0)
		return;
	if (strcmp(event, "refused") == 0 && FIELD(line, "ref", ref) && strcmp(ref, s->ref) == 0)
		note_refusal(s, line, lineno);
	else if (strcmp(event, "wrong_port") == 0 && FIELD(line, "ref", ref) && strcmp(ref, s->ref) == 0)
		FIELD(line, "words", s->hit.wrong_port);
	else
		note_conn_event(s, event, line);
}

static const char *or_dash(const char *s)
{
	return s && s[0] ? s : "-";
}

static void login_state(const struct decision *d, char *out, size_t outsz)
{
	if (d->login[0])
		snprintf(out, outsz, "logged in as %s", d->login);
	else if (d->login_failed[0])
		snprintf(out, outsz, "not logged in (a login failed: %s)", d->login_failed);
	else
		snprintf(out, outsz, "not logged in");
}

static void print_decision_text(const struct decision *d, const char *path, const struct explain_result *r)
{
	char login[FIELD_MAX + 64];
	login_state(d, login, sizeof(login));
	printf("Reference %s, %s line %ld, %s\n", d->conn[0] ? d->conn : "?", path, d->line, or_dash(d->ts));
	printf("  listener:  %s (role %s, tls %s)\n", or_dash(d->listener), or_dash(d->role), or_dash(d->tls_mode));
	printf("  client:    %s\n", or_dash(d->client));
	printf("  TLS:       %s\n", d->tls[0] ? d->tls : "no (plaintext)");
	printf("  login:     %s\n", login);
	printf("  command:   %s %s\n", or_dash(d->cmd), d->arg);
	printf("  reply:     %s %s\n", or_dash(d->code), or_dash(d->enh));
	if (d->wrong_port[0])
		diag_wrap(stdout, 13, "  port:", d->wrong_port);
	diag_wrap(stdout, 13, "  decision:", d->cause[0] ? d->cause : or_dash(d->reason));
	if (d->reason[0] && d->cause[0])
		diag_wrap(stdout, 13, "  reason:", d->reason);
	printf("\n");
	diag_wrap(stdout, 10, "Meaning:", r->meaning);
	printf("Most likely cause and fix:\n");
	diag_cause_text(stdout, 0, r->causes[0]);
}

static void json_kv(const char *k, const char *v, bool comma)
{
	printf("\"%s\": ", k);
	json_str(stdout, v[0] ? v : NULL);
	printf(comma ? ", " : "");
}

static void print_decision_json(const char *ref, const struct decision *d, const struct explain_result *r)
{
	char login[FIELD_MAX + 64];
	login_state(d, login, sizeof(login));
	printf("{");
	json_kv("ref", ref, true);
	json_kv("time", d->ts, true);
	json_kv("listener", d->listener, true);
	json_kv("role", d->role, true);
	json_kv("client", d->client, true);
	json_kv("tls", d->tls, true);
	json_kv("login", d->login[0] ? login : "", true);
	json_kv("command", d->cmd, true);
	json_kv("argument", d->arg, true);
	printf("\"code\": %s, ", d->code[0] ? d->code : "null");
	json_kv("enhanced", d->enh, true);
	json_kv("decision", d->cause[0] ? d->cause : d->reason, true);
	json_kv("reason", d->reason, true);
	json_kv("wrong_port", d->wrong_port, true);
	printf("\"causes\": [");
	for (int i = 0; i < r->n_causes; i++) {
		printf(i ? ", " : "");
		diag_cause_json(stdout, r->causes[i]);
	}
	printf("]}\n");
}

int reflog_explain(const struct explain_kb *kb, const char *ref, const char *path, bool json)
{
	struct scan *s = calloc(1, sizeof(*s));
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!s || !f) {
		fprintf(stderr, "postern: cannot read the log %s\n", path);
		free(s);
		return 1;
	}
	s->ref = ref;
	/* RUN.CONN.N, or CONN.N from versions before run ids */
	const char *dot1 = strchr(ref, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot2) {
		snprintf(s->run, sizeof(s->run), "%.*s", (int)(dot1 - ref), ref);
		snprintf(s->conn, sizeof(s->conn), "%.*s", (int)(dot2 - dot1 - 1), dot1 + 1);
	} else {
		snprintf(s->conn, sizeof(s->conn), "%.*s", (int)strcspn(ref, "."), ref);
	}
	s->in_run = !s->run[0];
	char line[LOG_LINE_MAX];
	long lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		bool whole = strchr(line, '\n') != NULL;
		scan_line(s, line, lineno);
		for (int c; !whole && (c = fgetc(f)) != EOF && c != '\n';)
			;   /* a longer line: the rest is skipped, its start was scanned */
	}
	if (f != stdin)
		fclose(f);
	int rc = 0;
	if (!s->hit.found) {
		fprintf(stderr, "postern: no refusal with reference %s in %s (references are printed as "
			"\"(ref RUN.CONN.N)\" at the end of a refusal)\n", ref, path);
		rc = 1;
	} else {
		/* The code, enhanced code and the logged reason are what explain matches. */
		char text[4 * FIELD_MAX + 8];
		snprintf(text, sizeof(text), "%s %s %s %s %s", s->hit.code, s->hit.enh, s->hit.cause, s->hit.reason,
			s->hit.wrong_port);
		struct explain_result r;
		explain_match(kb, text, strlen(text), &r);
		if (json)
			print_decision_json(ref, &s->hit, &r);
		else
			print_decision_text(&s->hit, path, &r);
	}
	free(s);
	return rc;
}
