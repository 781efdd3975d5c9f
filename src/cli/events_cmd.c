/* events_cmd.c - `postern events list --account ADDRESS [--sender ADDRESS] [--qid ID]
 * [--limit N] [--json]`: an account's records in the event store (events/events.h),
 * newest first, as its "My outgoing mail" page sees them: the records of its login,
 * of mail it queued, and of the envelope sender ADDRESS (the account's own address
 * unless --sender names another).  Reads data_dir/events.db read-only; works while the
 * server runs.  Text from mail and remote servers is escaped (it is hostile). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "diag/json.h"
#include "events/events.h"
#include "util/log.h"

#define EVENTS_CLI_DEFAULT 50
#define EVENTS_CLI_MAX 1000

struct events_cli_args {
	const char *account, *qid;
	size_t limit;
};

static bool parse(int argc, char **argv, struct events_cli_args *o)
{
	*o = (struct events_cli_args){ .limit = EVENTS_CLI_DEFAULT };
	if (argc < 1 || strcmp(argv[0], "list") != 0)
		return false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--account") == 0 && i + 1 < argc)
			o->account = argv[++i];
		else if (strcmp(argv[i], "--qid") == 0 && i + 1 < argc)
			o->qid = argv[++i];
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			long n = strtol(argv[++i], NULL, 10);
			o->limit = n > 0 && n <= EVENTS_CLI_MAX ? (size_t)n : EVENTS_CLI_MAX;
		} else
			return false;
	}
	return o->account && o->account[0];
}

static void print_json(const struct events_record *r)
{
	printf("{\"id\": %lld, \"when\": %lld, \"kind\": \"%s\"", r->id, (long long)r->when, events_kind_name(r->kind));
	const char *keys[] = { "account", "sender", "rcpt", "qid", "client_addr", "proto", "listener", "cmd", "enh",
		"cause_id", "ref", "text", "subject", "where" };
	const char *vals[] = { r->account, r->sender, r->rcpt, r->qid, r->client_addr, r->proto, r->listener, r->cmd,
		r->enh, r->cause_id, r->ref, r->text, r->subject, r->where };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		printf(", \"%s\": ", keys[i]);
		json_str(stdout, vals[i]);
	}
	printf(", \"code\": %d, \"next_try\": %lld, \"n_rcpts\": %u}\n", r->code, r->next_try, r->n_rcpts);
}

static void print_text(const struct events_record *r)
{
	char when[32], text[1400], subject[400];
	struct tm tm;
	time_t t = r->when;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
	log_quote(text, sizeof(text), r->text, strlen(r->text), 300);
	log_quote(subject, sizeof(subject), r->subject, strlen(r->subject), 100);
	printf("%s %-12s qid=%s from=<%s> to=<%s> login=%s client=%s cmd=%s code=%d %s cause=%s ref=%s where=\"%s\""
		" subject=%s text=%s\n", when, events_kind_name(r->kind), r->qid[0] ? r->qid : "-", r->sender, r->rcpt,
		r->account[0] ? r->account : "-", r->client_addr[0] ? r->client_addr : "-", r->cmd[0] ? r->cmd : "-",
		r->code, r->enh[0] ? r->enh : "-", r->cause_id[0] ? r->cause_id : "-", r->ref[0] ? r->ref : "-", r->where,
		subject, text);
}

int cli_events(int argc, char **argv, const struct conf *c, const char *sender, bool json)
{
	struct events_cli_args o;
	if (!parse(argc, argv, &o)) {
		fprintf(stderr, "usage: postern events list --account ADDRESS [--sender ADDRESS] [--qid ID] [--limit N] [--json]\n");
		return 2;
	}
	struct events_reader *r = NULL;
	char err[4200];
	if (!events_reader_open_conf(&r, c, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	const char *senders[] = { sender ? sender : o.account };
	struct events_query q = { .account = o.account, .senders = senders, .n_senders = 1, .limit = o.limit, .qid = o.qid };
	struct events_record *out = calloc(o.limit, sizeof(*out));
	long n = out ? events_list(r, &q, out, o.limit) : -1;
	events_reader_close(&r);
	if (n < 0) {
		if (c->directory_backend == CONF_DIRECTORY_POSTGRESQL)
			fprintf(stderr, "postern: cannot read the events from PostgreSQL ([directory] connection): is it up, "
				"and has postern directory migrate run?\n");
		else
			fprintf(stderr, "postern: cannot read %s/events.db\n", c->data_dir);
		free(out);
		return 1;
	}
	for (long i = 0; i < n; i++)
		json ? print_json(&out[i]) : print_text(&out[i]);
	if (!json && n == 0)
		printf("no events for %s\n", o.account);
	free(out);
	return 0;
}
