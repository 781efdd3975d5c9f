/* cluster_cmd.c - one view of every node of a cluster ([cluster] node set, the
 * PostgreSQL directory):
 *   postern cluster status      each node of the registry (postern_nodes): up or down and
 *                               since when, its queue (messages, deferred), the oldest
 *   postern queue list --cluster  every node's queue in one listing, each row naming its node
 * Each node is asked over its control listener (the registry's control address; TLS,
 * a node token for "control" signed with [cluster] secret_file: serve/control.h), all
 * at once on threads of their own, each with a deadline of CLUSTER_ASK_MS: a node that
 * is stopped or unreachable costs at most that, and is shown down since its last
 * heartbeat, with why. */
#include "cli/cli.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/node_token.h"
#include "conf/conf.h"
#include "directory/directory.h"
#include "queue/queue.h"
#include "serve/control.h"
#include "serve/startup.h"

#define CLUSTER_ASK_MS 3000
#define CLUSTER_NODES_MAX 64

struct node_ask {
	struct dir_node n;
	const char *command;
	const char *token;
	int status;                   /* 0 answered, 1 refused, -1 unreachable, -2 no control address */
	char reply[CONTROL_REPLY_MAX];
	pthread_t thread;
	bool started;
};

struct registry {
	struct node_ask *nodes;
	size_t n, more;               /* more: rows past CLUSTER_NODES_MAX, not asked */
};

static void add_node(void *arg, const struct dir_node *n)
{
	struct registry *r = arg;
	if (r->n >= CLUSTER_NODES_MAX) {
		r->more++;
		return;
	}
	r->nodes[r->n++].n = *n;
}

static void *ask_main(void *arg)
{
	struct node_ask *a = arg;
	a->status = control_send_tcp(a->n.control, a->token, a->command, CLUSTER_ASK_MS, a->reply, sizeof(a->reply));
	return NULL;
}

/* Every node of the registry asked `command`, in parallel; false with words on stderr
 * when the registry or the secret cannot be read. */
static bool ask_all(const struct conf *c, const char *command, struct registry *r)
{
	if (!c->cluster_node[0]) {
		fprintf(stderr, "postern: this node has no [cluster] node: the cluster commands run on a node of the cluster "
			"(its configuration names the shared directory and secret)\n");
		return false;
	}
	unsigned char secret[NODE_SECRET_MAX];
	size_t slen = 0;
	char err[DIR_ERROR_MAX + 64];
	if (!node_secret_load(c->cluster_secret_file, secret, &slen, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return false;
	}
	char token[NODE_TOKEN_MAX];
	node_token_make(secret, slen, CONTROL_TOKEN_PURPOSE, c->cluster_node, time(NULL), token);
	explicit_bzero(secret, sizeof(secret));
	struct directory *d = NULL;
	startup_directory(c);
	r->nodes = calloc(CLUSTER_NODES_MAX, sizeof(*r->nodes));
	bool ok = r->nodes && directory_open(&d, c->data_dir, err, sizeof(err));
	if (ok && directory_node_list(d, add_node, r, err) != DIR_OK) {
		snprintf(err, sizeof(err), "%s", directory_error(d));
		ok = false;
	}
	directory_close(&d);
	if (!ok) {
		fprintf(stderr, "postern: the node registry cannot be read: %s\n", r->nodes ? err : "out of memory");
		return false;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct node_ask *a = &r->nodes[i];
		a->command = command;
		a->token = token;
		a->status = -2;
		if (a->n.control[0])
			a->started = pthread_create(&a->thread, NULL, ask_main, a) == 0;
		if (a->n.control[0] && !a->started)
			ask_main(a);   /* no thread: ask it here, still within its deadline */
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->nodes[i].started)
			pthread_join(r->nodes[i].thread, NULL);
	explicit_bzero(token, sizeof(token));
	return true;
}

/* "00:41:07 (3 min)": a time of day (UTC) and how long ago. */
static void when_words(long long t, time_t now, char *out, size_t outsz)
{
	if (t <= 0) {
		snprintf(out, outsz, "-");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	long long ago = (long long)now - t;
	char span[24];
	if (ago < 120)
		snprintf(span, sizeof(span), "%lld s", ago < 0 ? 0 : ago);
	else if (ago < 7200)
		snprintf(span, sizeof(span), "%lld min", ago / 60);
	else if (ago < 172800)
		snprintf(span, sizeof(span), "%lld h", ago / 3600);
	else
		snprintf(span, sizeof(span), "%lld days", ago / 86400);
	if (ago >= 86400)
		snprintf(out, outsz, "%04d-%02d-%02d %02d:%02d (%s)", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			tm.tm_min, span);
	else
		snprintf(out, outsz, "%02d:%02d:%02d (%s)", tm.tm_hour, tm.tm_min, tm.tm_sec, span);
}

/* A key=value field of a status answer, or -1. */
static long long field(const char *reply, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = reply; (p = strstr(p, key)) != NULL; p += kl)
		if ((p == reply || p[-1] == ' ') && p[kl] == '=')
			return strtoll(p + kl + 1, NULL, 10);
	return -1;
}

static bool status_row(const struct conf *c, const struct node_ask *a, time_t now)
{
	char since[64], oldest[64], state[400];
	bool registry_up = now - a->n.last_seen <= (long long)c->cluster_down_after;
	bool up = a->status == 0 || (a->status == -2 && registry_up);
	long long q = a->n.queue_size, deferred = -1, old = a->n.oldest_queued, started = a->n.started;
	if (a->status == 0) {
		q = field(a->reply, "queue");
		deferred = field(a->reply, "deferred");
		old = field(a->reply, "oldest");
		started = field(a->reply, "started");
	}
	when_words(up ? started : a->n.last_seen, now, since, sizeof(since));
	when_words(old, now, oldest, sizeof(oldest));
	if (a->status == 0)
		snprintf(state, sizeof(state), "up since %s", since);
	else if (a->status == -2)
		snprintf(state, sizeof(state), "%s since %s (no control listener: the registry's heartbeat only)",
			up ? "up" : "down", since);
	else
		snprintf(state, sizeof(state), "down since %s (last heartbeat; control %s: %.120s)", since, a->n.control,
			a->reply);
	char dq[24] = "-";
	if (deferred >= 0)
		snprintf(dq, sizeof(dq), "%lld", deferred);
	printf("%-16s %-10lld %-9s %-22s %s%s\n", a->n.name, q, dq, old > 0 ? oldest : "-", state,
		a->status != 0 && a->n.queue_size >= 0 ? " [queue as of the last heartbeat]" : "");
	return up;
}

int cli_cluster(int argc, char **argv, const struct conf *c)
{
	if (argc != 1 || strcmp(argv[0], "status") != 0) {
		fprintf(stderr, "usage: postern cluster status [-c FILE]\n");
		return 2;
	}
	struct registry r = { 0 };
	if (!ask_all(c, "status", &r)) {
		free(r.nodes);
		return 1;
	}
	time_t now = time(NULL);
	printf("%-16s %-10s %-9s %-22s %s\n", "NODE", "QUEUE", "DEFERRED", "OLDEST (UTC)", "STATE");
	size_t down = 0;
	for (size_t i = 0; i < r.n; i++)
		down += !status_row(c, &r.nodes[i], now);
	printf("%zu node(s), %zu up, %zu down%s\n", r.n, r.n - down, down, r.more ? "; more in the registry, not asked" : "");
	free(r.nodes);
	return down ? 1 : 0;
}

/* One record of a "queue" answer: QID STATE ARRIVAL SIZE SENDER RCPT PENDING NEXT_TRY. */
static void print_record(const char *node, char *rec, time_t now)
{
	char *f[8] = { 0 }, *save = NULL;
	size_t n = 0;
	for (char *t = strtok_r(rec, " ", &save); t && n < 8; t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	if (n < 8)
		return;
	long long arrival = strtoll(f[2], NULL, 10), next = strtoll(f[7], NULL, 10);
	char age[32] = "-", nexts[48] = "";
	if (arrival > 0)
		queue_view_age((long long)now - arrival, age, sizeof(age));
	if (next > now) {
		char in[32];
		queue_view_age(next - (long long)now, in, sizeof(in));
		snprintf(nexts, sizeof(nexts), "; next try in %s", in);
	}
	printf("%-16s %-24s %6s %9s  %-8s %s\n", node, f[0], age, f[3], f[1], f[4]);
	if (strcmp(f[5], "-") != 0)
		printf("%-16s %-24s to %s (%s pending%s)\n", "", "", f[5], f[6], nexts);
}

int cli_queue_cluster(const struct conf *c)
{
	struct registry r = { 0 };
	if (!ask_all(c, "queue", &r)) {
		free(r.nodes);
		return 1;
	}
	time_t now = time(NULL);
	printf("%-16s %-24s %6s %9s  %-8s %s\n", "NODE", "ID", "AGE", "SIZE", "STATE", "SENDER");
	long long total = 0;
	size_t missing = 0;
	for (size_t i = 0; i < r.n; i++) {
		struct node_ask *a = &r.nodes[i];
		if (a->status != 0) {
			missing++;
			continue;
		}
		char *save = NULL;
		long long node_total = -1, shown = 0;
		for (char *rec = strtok_r(a->reply, "\t", &save); rec; rec = strtok_r(NULL, "\t", &save)) {
			if (strncmp(rec, "total=", 6) == 0) {
				node_total = strtoll(rec + 6, NULL, 10);
			} else if (strncmp(rec, "node=", 5) != 0) {
				print_record(a->n.name, rec, now);
				shown++;
			}
		}
		total += node_total > 0 ? node_total : shown;
		if (node_total > shown)
			printf("%-16s (%lld more on this node: postern queue list there shows all)\n", a->n.name,
				node_total - shown);
	}
	printf("%lld message(s) on %zu node(s)\n", total, r.n - missing);
	for (size_t i = 0; i < r.n; i++) {
		const struct node_ask *a = &r.nodes[i];
		if (a->status != 0)
			printf("%s: not listed: %s\n", a->n.name, a->status == -2 ? "it has no control listener"
				: a->reply);
	}
	free(r.nodes);
	return missing ? 1 : 0;
}
