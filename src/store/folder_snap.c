/* folder_snap.c - what a full sync of a folder found (cur/ listed and matched with
 * dovecot-uidlist: UID, file name, W= size of every message), kept once per folder in
 * its folder_shared record and shared by the views built from it.
 *
 * Two things follow.  A view opened on a folder that has not changed since the last
 * full sync (the stamps of dovecot-uidlist, cur/ and new/ and the in-process change
 * counter all the same, and not too fresh to trust) is built from the snapshot without
 * listing cur/ or reading the uidlist: SELECT of a 10,000-message folder is three stats.
 * And the views' file names point into the snapshot instead of being copied per view,
 * so a thousand sessions IDLE on one large INBOX hold one copy of its names.  A view
 * whose message was renamed since (a flag stored) owns that one name (VIEW_OWN_NAME).
 * A snapshot is freed when the last view and the shared record let go of it. */
#include "store/folder_impl.h"

#include <stdlib.h>
#include <string.h>

struct folder_snap *folder_snap_new(const struct uidlist *ul, char **names, const long *rec_file)
{
	size_t n = 0, bytes = 0;
	for (size_t r = 0; r < ul->n; r++)
		if (rec_file[r] >= 0) {
			n++;
			bytes += strlen(names[rec_file[r]]) + 1;
		}
	struct folder_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->msgs = malloc((n + 1) * sizeof(*s->msgs));
	s->names = malloc(bytes + 1);
	if (!s->msgs || !s->names) {
		free(s->msgs);
		free(s->names);
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->uidvalidity = ul->uidvalidity;
	s->nextuid = ul->nextuid;
	char *p = s->names;
	for (size_t r = 0; r < ul->n; r++) {
		if (rec_file[r] < 0)
			continue;
		size_t len = strlen(names[rec_file[r]]) + 1;
		memcpy(p, names[rec_file[r]], len);
		s->msgs[s->n++] = (struct folder_snap_msg){ .uid = ul->recs[r].uid, .vsize = ul->recs[r].vsize, .name = p };
		p += len;
	}
	return s;
}

struct folder_snap *folder_snap_ref(struct folder_snap *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void folder_snap_release(struct folder_snap **sp)
{
	struct folder_snap *s = *sp;
	*sp = NULL;
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	free(s->msgs);
	free(s->names);
	free(s);
}

bool folder_snap_matches(const struct folder_snap *s, const struct folder_stamp st[3], uint64_t counter)
{
	return s && s->trusted && s->counter == counter && folder_stamp_same(&s->st[0], &st[0]) &&
	       folder_stamp_same(&s->st[1], &st[1]) && folder_stamp_same(&s->st[2], &st[2]);
}

bool folder_snap_same_moment(const struct folder_snap *s, const struct folder_stamp st[3], uint64_t counter)
{
	return s && s->counter == counter && folder_stamp_same(&s->st[0], &st[0]) &&
	       folder_stamp_same(&s->st[1], &st[1]) && folder_stamp_same(&s->st[2], &st[2]);
}
