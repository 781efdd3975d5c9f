/* send_limits.c - the outbound limits of the running server (see send_limits.h).
 *
 * One thread of its own (util/workq) does the disk work: the periodic save of the
 * counters and the notices (a queue file each, fsync'd).  Not the commit threads:
 * the stages at MAIL tell of a limit from the decision threads, which may still run
 * while the commit threads are being stopped; this queue lives until after them. */
#include "serve/send_limits.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "delivery/bounce.h"
#include "delivery/delivery.h"
#include "delivery/notice.h"
#include "queue/queue.h"
#include "util/buf.h"
#include "util/log.h"
#include "serve/loopq.h"
#include "util/workq.h"
#include "wire/enh.h"

#define NOTICE_TEXT_MAX (16u << 10)

struct limits_service {
	const struct conf *conf;
	struct queue *queue;
	struct delivery *delivery;
	struct policy_limits *counts;
	struct workq *q;
	struct event *done_ev, *timer;
	bool saving;                   /* a save is on the thread */
	bool loaded;                   /* the state file was read: saving it keeps what it had */
	char path[1100];
};

struct notice_job {
	struct limits_service *ls;
	struct policy_limit_notice n;
	char qid[2][QUEUE_ID_LEN + 1];   /* administrator, user */
	char err[256];
};

/* --- saving ---------------------------------------------------------------------- */

static void save_work(void *arg)
{
	struct limits_service *ls = arg;
	char err[512];
	if (!policy_limits_save(ls->counts, ls->path, (long long)time(NULL), err, sizeof(err)))
		log_event(LOG_ERR, "limits_save_failed", "error=\"%s\" hint=\"the counters are kept in memory; a restart "
			"now would start them from the last save\"", err);
}

static void save_done(void *arg)
{
	struct limits_service *ls = arg;
	ls->saving = false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct limits_service *ls = arg;
	if (ls->saving || !ls->q)
		return;
	ls->saving = true;
	workq_push(ls->q, save_work, save_done, ls);
}

/* --- notices ------------------------------------------------------------------------ */

static void when_text(long long t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t < 0 || !gmtime_r(&tt, &tm) || !strftime(out, outsz, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(out, outsz, "later");
}

static void header(struct buf *b, const struct conf *c, const char *to, const char *subject)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
	buf_printf(b, "From: Mail System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nDate: %s\r\nSubject: %s\r\n"
		"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		c->hostname, to, date, subject);
}

static void reached_text(struct buf *b, const struct conf *c, const struct policy_limit_notice *n)
{
	bool acct = n->scope == LIMIT_ACCOUNT, msgs = strstr(n->limit_name, "messages") != NULL;
	char when[64];
	when_text(n->resume, when, sizeof(when));
	buf_printf(b, "The %s %s reached its sending limit on %s: %llu %s, and the limit is %llu %s\r\n"
		"([limits] %s%s).\r\n\r\n", acct ? "account" : "domain", n->key, c->hostname, n->count,
		msgs ? "messages in the last hour" : "recipients in the last 24 hours", n->limit,
		msgs ? "per hour" : "per day", n->limit_name, acct ? ", or the account's own limit" : "");
	buf_printf(b, "Its further mail is refused with 451 " ENH_TEMP_NOT_AUTHORIZED " (temporary: the mail program keeps the\r\n"
		"message and tries again) until %s, when the oldest of it leaves the\r\n"
		"window. The client that hit the limit came from %s.\r\n\r\n", when, n->client_addr);
	buf_appends(b, "If this is the usual mail of this sender, raise the limit:\r\n");
	if (acct)
		buf_printf(b, "  postern user limit %s --%s N\r\n", n->key, msgs ? "messages-per-hour" : "recipients-per-day");
	else
		buf_printf(b, "  [limits] %s = N in the configuration, then restart\r\n", n->limit_name);
	buf_appends(b, "If it is not (a stolen password sending spam is the usual cause), change the\r\n"
		"password at once (postern user del / add, or revoke its app passwords) and look at\r\n"
		"what it queued: postern queue list.\r\n\r\n"
		"This notice is sent once per account or domain per day; the log has one line per\r\n"
		"refusal (event=limit_reached).\r\n");
}

static void burst_text(struct buf *b, const struct conf *c, const struct policy_limit_notice *n, bool user)
{
	if (user) {
		buf_printf(b, "Your account %s sent %llu messages in the last hour, far more than its\r\n"
			"usual %.1f per hour. To protect you and everyone who sends through %s, the\r\n"
			"messages it sends now are held on the server, not sent, until the administrator\r\n"
			"has looked at them.\r\n\r\n"
			"If you sent them yourself, tell your administrator, who can release them.\r\n"
			"If you did not, someone else is using your password: change it now, and tell\r\n"
			"your administrator.\r\n", n->key, n->count, n->baseline, c->hostname);
		return;
	}
	buf_printf(b, "The account %s sent %llu messages in the last hour, %llu times or more its\r\n"
		"usual %.1f per hour ([limits] burst_factor). Its new mail is held in the queue\r\n"
		"from now on, until the hourly volume falls back; the user was told too.\r\n"
		"The client came from %s.\r\n\r\n"
		"  postern queue list --held        the held messages\r\n"
		"  postern queue show ID            one of them\r\n"
		"  postern queue release ID         send it after all\r\n"
		"  postern queue delete ID          remove it\r\n\r\n"
		"If the account is stolen, change its password first. If the volume is genuine,\r\n"
		"raise [limits] burst_factor, or set burst_hold = no.\r\n", n->key, n->count,
		(unsigned long long)c->limits_burst_factor, n->baseline, n->client_addr);
}

static bool queue_notice(struct notice_job *j, const char *to, bool user, char *qid)
{
	const struct conf *c = j->ls->conf;
	const struct policy_limit_notice *n = &j->n;
	char subject[POLICY_LOGIN_MAX + 96];
	struct buf b;
	buf_init(&b, NOTICE_TEXT_MAX);
	if (n->kind == LIMIT_NOTICE_REACHED)
		snprintf(subject, sizeof(subject), "Sending limit reached: %s (%s)", n->key, n->limit_name);
	else
		snprintf(subject, sizeof(subject), user ? "Your outgoing mail is held: unusual volume"
			: "Outgoing mail held: %s sent a burst", n->key);
	header(&b, c, to, subject);
	if (n->kind == LIMIT_NOTICE_REACHED)
		reached_text(&b, c, n);
	else
		burst_text(&b, c, n, user);
	return bounce_queue_report(j->ls->queue, c, NOTICE_PROTOCOL, to, false, &b, qid, j->err, sizeof(j->err));
}

static void notice_work(void *arg)
{
	struct notice_job *j = arg;
	char admin[QUEUE_ADDR_MAX];
	notice_recipient(j->ls->conf, admin, sizeof(admin));
	if (!queue_notice(j, admin, false, j->qid[0]))
		j->qid[0][0] = '\0';
	if (j->n.kind == LIMIT_NOTICE_BURST && j->n.scope == LIMIT_ACCOUNT && !queue_notice(j, j->n.key, true, j->qid[1]))
		j->qid[1][0] = '\0';
}

static void notice_done(void *arg)
{
	struct notice_job *j = arg;
	for (int i = 0; i < 2; i++)
		if (j->qid[i][0])
			delivery_enqueue(j->ls->delivery, j->qid[i]);
	log_event(j->qid[0][0] ? LOG_INFO : LOG_ERR, "limit_notice", "kind=%s %s=%s qid=%s%s%s%s%s",
		j->n.kind == LIMIT_NOTICE_BURST ? "burst" : "limit_reached", j->n.scope == LIMIT_ACCOUNT ? "account" : "domain",
		j->n.key, j->qid[0][0] ? j->qid[0] : "-", j->qid[1][0] ? " user_qid=" : "", j->qid[1],
		j->qid[0][0] ? "" : " error=", j->qid[0][0] ? "" : j->err);
	free(j);
}

void limits_service_notice(void *ctx, const struct policy_limit_notice *n)
{
	struct limits_service *ls = ctx;
	struct notice_job *j = calloc(1, sizeof(*j));
	if (!j || !ls->q) {
		free(j);
		return;
	}
	j->ls = ls;
	j->n = *n;
	workq_push(ls->q, notice_work, notice_done, j);
}

/* --- life ------------------------------------------------------------------------------ */

struct limits_service *limits_service_new(struct event_base *base, const struct conf *cf, struct queue *q,
	struct delivery *d, char *err, size_t errsz)
{
	struct limits_service *ls = calloc(1, sizeof(*ls));
	if (!ls) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	*ls = (struct limits_service){ .conf = cf, .queue = q, .delivery = d };
	snprintf(ls->path, sizeof(ls->path), "%s/limits.state", cf->data_dir);
	ls->counts = policy_limits_new(LIMITS_MAX_ENTRIES);
	loopq_start(base, 1, &ls->q, &ls->done_ev);
	ls->timer = event_new(base, -1, EV_PERSIST, timer_cb, ls);
	struct timeval every = { LIMITS_SAVE_INTERVAL, 0 };
	if (!ls->counts || !ls->q || !ls->timer || event_add(ls->timer, &every) != 0) {
		snprintf(err, errsz, "cannot start the limits thread");
		limits_service_free(&ls);
		return NULL;
	}
	size_t skipped = 0;
	char lerr[512];
	if (!policy_limits_load(ls->counts, ls->path, (long long)time(NULL), &skipped, lerr, sizeof(lerr)))
		log_event(LOG_WARN, "limits_state_unreadable", "error=\"%s\" hint=\"the sending limits count from zero\"", lerr);
	else if (skipped)
		log_event(LOG_WARN, "limits_state_damaged", "path=%s skipped_lines=%zu", ls->path, skipped);
	ls->loaded = true;
	return ls;
}

struct policy_limits *limits_service_counts(struct limits_service *ls)
{
	return ls->counts;
}

void limits_service_count(struct limits_service *ls, const char *login, const char *sender_domain, size_t rcpts)
{
	char domain[POLICY_DOMAIN_MAX];
	policy_limits_sending_domain(login, sender_domain, domain, sizeof(domain));
	policy_limits_count(ls->counts, login, domain, rcpts > UINT32_MAX ? UINT32_MAX : (unsigned)rcpts,
		(long long)time(NULL));
}

void limits_service_free(struct limits_service **lsp)
{
	struct limits_service *ls = *lsp;
	if (!ls)
		return;
	if (ls->timer)
		event_free(ls->timer);
	loopq_stop(&ls->q, &ls->done_ev);   /* notices under way are queued; their callbacks run here */
	if (ls->counts) {
		if (ls->loaded)
			save_work(ls);
		policy_limits_free(&ls->counts);
	}
	free(ls);
	*lsp = NULL;
}
