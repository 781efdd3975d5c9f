/* local.c - delivery into local Maildirs (see local.h). */
#include "delivery/local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "queue/queue.h"
#include "store/maildir.h"
#include "store/quota.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/parse.h"
#include "wire/enh.h"

/* "new/NAME,S=123,W=130" -> 123 */
static uint64_t stored_size(const char *name)
{
	const char *p = strstr(name, ",S=");
	return p ? strtoull(p + 3, NULL, 10) : 0;
}

/* The owner's mailbox crossed the warning threshold: a short message, once. */
static void quota_warning(const struct conf *c, const char *rcpt, const char *path, const struct quota_state *st)
{
	char msg[2048], date[64], u[32], l[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
	unsigned pct = quota_percent(st);
	int n = snprintf(msg, sizeof(msg),
		"From: Mail System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nDate: %s\r\nSubject: Your mailbox is %u%% full\r\n"
		"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
		"Your mailbox uses %s of its %s.\r\n\r\n"
		"When it is full, new mail to you is refused and the senders are told your mailbox is full.\r\n"
		"Delete old messages (and empty the trash), or ask your mail administrator for more room.\r\n",
		c->hostname, rcpt, date, pct, format_size(st->used_bytes, u, sizeof(u)), format_size(st->limit_bytes, l, sizeof(l)));
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	int fd = memfd_create("postern-quota-warning", MFD_CLOEXEC);
	if (fd < 0)
		return;
	char name[600], err[256];
	if (fileio_write_all(fd, msg, (size_t)n) &&
		maildir_deliver(path, "", fd, 0, (uint64_t)n, name, sizeof(name), err, sizeof(err)) == STORE_OK) {
		log_event(LOG_INFO, "quota_warning", "to=<%s> percent=%u", rcpt, pct);
		/* Tag it so that it is not counted (quota.h QUOTA_WARNING_TAG): the warning
		 * must never push the mailbox over its limit or take room real mail needs.
		 * Should the rename fail, it is an ordinary message and counted as one. */
		char from[1400], to[1400];
		snprintf(from, sizeof(from), "%s/%s", path, name);
		if (snprintf(to, sizeof(to), "%s/%s" QUOTA_WARNING_TAG, path, name) >= (int)sizeof(to) || rename(from, to) != 0)
			quota_add(path, (int64_t)stored_size(name), 1);   /* stored with LF ends: S=, not n */
	}
	close(fd);
}

static void log_already(const struct queue_message *m, const char *rcpt, const char *path, const char *name)
{
	log_event(LOG_INFO, "already_delivered", "qid=%s to=<%s> mailbox=%s file=%s action=\"not delivered again\"",
		m->env.qid, rcpt, path, name);
}

/* What goes before the message in the mailbox: the trace fields of the final delivery
 * (RFC 5321 §4.4: Return-Path; Delivered-To, as Postfix and Dovecot write it), then the
 * header fields the end-of-data stages added (queue.h), with the Maildir's LF line
 * ends like the rest of the file.  Malloc'd; NULL on no memory. */
static char *delivery_prefix(const struct queue_message *m, const char *rcpt)
{
	size_t cap = 1200 + m->added_len + 1;
	char *p = malloc(cap);
	if (!p)
		return NULL;
	int n = snprintf(p, 1200, "Return-Path: <%s>\nDelivered-To: %s\n", m->env.sender,
		strchr(rcpt, '@') ? rcpt : "postmaster");
	size_t o = n < 0 ? 0 : (size_t)n < 1200 ? (size_t)n : 1199;
	for (size_t i = 0; i < m->added_len; i++)
		if (m->added[i] != '\r')   /* the block's line ends are CR LF (queue_writer_set_added) */
			p[o++] = m->added[i];
	p[o] = '\0';
	return p;
}

/* A copy is in place as `name`: the directory whose fsync makes its name durable. */
static enum local_result delivered_in(const char *path, const char *name, char *sync_dir, size_t sync_dirsz,
	char *why, size_t whysz)
{
	if (maildir_copy_dir(path, name, sync_dir, sync_dirsz))
		return LOCAL_DELIVERED;
	snprintf(why, whysz, "local delivery to %s failed: path too long", path);
	return LOCAL_TEMP;
}

enum local_result local_deliver(const struct conf *c, const struct queue_message *m, size_t i, const char *path,
	bool may_repeat, char *sync_dir, size_t sync_dirsz, char *why, size_t whysz)
{
	const char *rcpt = m->env.rcpts[i];
	char name[600], err[512];
	sync_dir[0] = '\0';
	struct maildir_copy_id id = { .arrival = (long long)m->env.arrival, .qid = m->env.qid, .rcpt_index = i };
	if (may_repeat) {
		/* Before the quota check: the first copy counts against the quota and would
		 * make a full mailbox defer a message that is already there. */
		switch (maildir_find_copy(path, &id, name, sizeof(name), err, sizeof(err))) {
		case MAILDIR_COPY_PRESENT:
			log_already(m, rcpt, path, name);
			return delivered_in(path, name, sync_dir, sync_dirsz, why, whysz);
		case MAILDIR_COPY_UNKNOWN:
			snprintf(why, whysz, "local delivery to %s failed: %s", path, err);
			return LOCAL_TEMP;
		case MAILDIR_COPY_ABSENT:
			break;
		}
	}
	struct quota_state st;
	/* Checked again here: the end of data saw the mailbox before this message's
	 * siblings and other deliveries.  The message was accepted, so holding it for days
	 * of retries would only delay the news: the recipient fails at once and the sender
	 * gets a bounce now with these words (full_is_permanent chooses what SMTP clients
	 * are told before acceptance; see docs/operations.md "Full mailboxes"). */
	if (quota_check(path, queue_message_size(m), &st, err, sizeof(err)) == QUOTA_FULL) {
		char u[32], l[32], left[32], sz[32];
		if (st.limit_bytes && st.used_bytes < st.limit_bytes)
			snprintf(why, whysz, "552 " ENH_PERM_MAILBOX_FULL " the mailbox of %s has %s left (%s of %s used) and the message is %s; "
				"its owner must delete mail", rcpt, format_size(st.limit_bytes - st.used_bytes, left, sizeof(left)),
				format_size(st.used_bytes, u, sizeof(u)), format_size(st.limit_bytes, l, sizeof(l)),
				format_size(queue_message_size(m), sz, sizeof(sz)));
		else
			snprintf(why, whysz, "552 " ENH_PERM_MAILBOX_FULL " the mailbox of %s is full (%s of %s used); its owner must delete mail",
				rcpt, format_size(st.used_bytes, u, sizeof(u)), format_size(st.limit_bytes, l, sizeof(l)));
		return LOCAL_PERM;
	}
	char *prefix = delivery_prefix(m, rcpt);
	if (!prefix) {
		snprintf(why, whysz, "local delivery to %s failed: out of memory", path);
		return LOCAL_TEMP;
	}
	enum store_result r = maildir_deliver_copy(path, &id, prefix, m->fd, m->body_offset, m->body_size, false, name,
		sizeof(name), err, sizeof(err));
	free(prefix);
	if (r == STORE_DUPLICATE) {
		log_already(m, rcpt, path, name);
		return delivered_in(path, name, sync_dir, sync_dirsz, why, whysz);
	}
	if (r != STORE_OK) {
		snprintf(why, whysz, "local delivery to %s failed: %s", path, err);
		return LOCAL_TEMP;
	}
	log_event(LOG_INFO, "delivered", "qid=%s to=<%s> mailbox=%s file=%s size=%llu", m->env.qid, rcpt, path, name,
		(unsigned long long)queue_message_size(m));
	if (st.defined) {
		uint64_t stored = stored_size(name);
		quota_add(path, (int64_t)stored, 1);
		/* The usage quota_check read, plus this message: no second read of maildirsize. */
		st.used_bytes += stored;
		st.used_count += 1;
		if (quota_warning_due(path, &st, (unsigned)c->quota_warning_percent))
			quota_warning(c, rcpt, path, &st);
	}
	return delivered_in(path, name, sync_dir, sync_dirsz, why, whysz);
}
