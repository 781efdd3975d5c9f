/* exec_pending.c - until the message commands of imap/exec.h are built (imap-commands'
 * src/imap/cmd_*.c; meson.build leaves this file out as soon as cmd_fetch.c exists),
 * they answer NO [CANNOT] saying so, and the untagged updates are not sent.  The imap
 * listener role is documented as in progress meanwhile (docs/configuration.md). */
#include "imap/exec.h"
#include "imap/reply.h"

static enum imap_exec_status pending(const struct imap_cmd *c, struct buf *out)
{
	imap_reply_tagged(out, c->tag, IMAP_NO, "CANNOT", "%s%s is not available on this server yet (IMAP is in progress)",
		c->uid ? "UID " : "", imap_cmd_label(c->name));
	return IMAP_EXEC_DONE;
}

enum imap_exec_status imap_exec_fetch(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

enum imap_exec_status imap_exec_search(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

enum imap_exec_status imap_exec_store(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

enum imap_exec_status imap_exec_copy(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

enum imap_exec_status imap_exec_move(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

enum imap_exec_status imap_exec_expunge(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	(void)x;
	return pending(c, out);
}

void imap_exec_sync(struct imap_exec *x, struct buf *out, bool allow_expunge)
{
	(void)x;
	(void)out;
	(void)allow_expunge;
}

bool imap_exec_expunge_silent(struct imap_exec *x, char *err, size_t errsz)
{
	(void)x;
	(void)err;
	(void)errsz;
	return true;
}
