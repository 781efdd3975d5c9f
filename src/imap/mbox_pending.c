/* mbox_pending.c - until store/folder.h is built (imap-store; meson.build leaves this
 * file out as soon as src/store/folder.h exists, and builds mbox.c and mbox_list.c
 * instead), the mailbox commands answer NO [CANNOT] saying so. */
#include "imap/internal.h"

void imap_mbox_login_setup(struct imap_session *s)
{
	(void)s;
}

void imap_mbox_close_selected(struct imap_session *s)
{
	s->x.sel = NULL;
}

void imap_mbox_run(struct imap_session *s, const struct imap_cmd *c, struct buf *out, enum imap_exec_status *st)
{
	(void)s;
	*st = IMAP_EXEC_DONE;
	if (c)
		imap_reply_tagged(out, c->tag, IMAP_NO, "CANNOT", "%s is not available on this server yet (IMAP is in "
			"progress)", imap_cmd_label(c->name));
}
