/* notice.c - the postmaster notice about failed messages (see notice.h). */
#include "delivery/notice.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "delivery/bounce.h"
#include "queue/queue.h"
#include "util/buf.h"

#define NOTICE_TEXT_MAX (128u << 10)

void notice_recipient(const struct conf *c, char *out, size_t outsz)
{
	snprintf(out, outsz, "postmaster@%s", c->n_local_domains ? c->local_domains[0] : c->hostname);
}

/* Reasons come from remote replies and file names: one line of printable ASCII. */
static void put_clean(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		buf_appendc(b, *p < 0x20 || *p > 0x7e ? '?' : (char)*p);
}

bool notice_failed_send(struct queue *q, const struct conf *c, const struct failed_item *items, size_t n,
	size_t more, char *qid, char *err, size_t errlen)
{
	char rcpt[1][QUEUE_ADDR_MAX], date[64];
	notice_recipient(c, rcpt[0], sizeof(rcpt[0]));
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
	size_t total = n + more;
	struct buf b;
	buf_init(&b, NOTICE_TEXT_MAX);
	buf_printf(&b, "From: Mail System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nDate: %s\r\n"
		"Subject: %zu message(s) moved to queue/failed/ on %s\r\n"
		"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		c->hostname, rcpt[0], date, total, c->hostname);
	buf_printf(&b, "Postern could not deliver the following %zu queue file(s) and moved them to\r\n"
		"%s/queue/failed/, where they are kept for you. Nothing else happens to them.\r\n\r\n", total, c->data_dir);
	for (size_t i = 0; i < n; i++) {
		buf_printf(&b, "  %s  ", items[i].qid);
		put_clean(&b, items[i].why);
		buf_appends(&b, "\r\n");
	}
	if (more)
		buf_printf(&b, "  ... and %zu more (see the list below)\r\n", more);
	buf_appends(&b, "\r\nWhat to do:\r\n"
		"  postern queue list --failed      every failed message, and why\r\n"
		"  postern queue show ID            its envelope and headers\r\n"
		"  postern queue requeue ID         try it again (every recipient), e.g. after fixing the cause\r\n"
		"  postern queue delete ID          remove it for good\r\n\r\n"
		"A file that is not a queue file (a FIFO, a symbolic link, a damaged file) cannot be\r\n"
		"requeued: look at it, then delete it. The log has one line per file (event=queue_corrupt\r\n"
		"or event=kept).\r\n");
	return bounce_queue_report(q, c, NOTICE_PROTOCOL, rcpt[0], false, &b, qid, err, errlen);
}
