/* local.c - delivery into local Maildirs (see local.h). */
#include "delivery/local.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "queue/queue.h"
#include "store/maildir.h"
#include "util/log.h"
#include "util/parse.h"

static bool user_path(const struct conf *c, const struct dir_user *u, char *path, size_t pathsz)
{
	return snprintf(path, pathsz, "%s/mail/%s/%s", c->data_dir, u->domain, u->local) < (int)pathsz;
}

enum local_where local_resolve(const struct conf *c, struct directory *dir, const char *rcpt,
	char *path, size_t pathsz)
{
	char local[320], domain[320];
	const char *at = strrchr(rcpt, '@');
	if (!at) {
		/* bare <postmaster> */
		snprintf(local, sizeof(local), "postmaster");
		snprintf(domain, sizeof(domain), "%s", c->n_local_domains ? c->local_domains[0] : c->hostname);
	} else {
		size_t ln = (size_t)(at - rcpt);
		if (ln >= sizeof(local))
			return WHERE_NO_USER;
		memcpy(local, rcpt, ln);
		local[ln] = '\0';
		snprintf(domain, sizeof(domain), "%s", at + 1);
		ascii_lower(local);
		ascii_lower(domain);
	}
	if (!conf_is_local_domain(c, domain)) {
		enum dir_result r = directory_domain_exists(dir, domain);
		if (r == DIR_ERROR)
			return WHERE_TEMPFAIL;
		if (r != DIR_OK)
			return WHERE_REMOTE;
	}
	struct dir_user u;
	enum dir_result r = directory_user_lookup(dir, local, domain, &u);
	if (r == DIR_NOT_FOUND) {
		/* An alias: deliver to the user it points to. */
		char target[DIR_ADDRESS_MAX];
		r = directory_alias_lookup(dir, local, domain, target, sizeof(target));
		char *tat = r == DIR_OK ? strrchr(target, '@') : NULL;
		if (tat) {
			*tat = '\0';
			r = directory_user_lookup(dir, target, tat + 1, &u);
		} else if (r == DIR_OK) {
			r = DIR_NOT_FOUND;
		}
	}
	if (r == DIR_ERROR)
		return WHERE_TEMPFAIL;
	if (r == DIR_OK)
		return user_path(c, &u, path, pathsz) ? WHERE_LOCAL : WHERE_TEMPFAIL;
	if (strcmp(local, "postmaster") == 0) {
		/* RFC 5321 §4.5.1: postmaster mail is never refused nor lost. */
		const char *pm = c->postmaster;
		const char *pat = strrchr(pm, '@');
		if (pm[0] && pat) {
			char pl[320];
			size_t pn = (size_t)(pat - pm);
			if (pn < sizeof(pl)) {
				memcpy(pl, pm, pn);
				pl[pn] = '\0';
				if (directory_user_lookup(dir, pl, pat + 1, &u) == DIR_OK)
					return user_path(c, &u, path, pathsz) ? WHERE_LOCAL : WHERE_TEMPFAIL;
			}
		}
		return snprintf(path, pathsz, "%s/mail/%s/postmaster", c->data_dir, domain) < (int)pathsz ? WHERE_LOCAL
			: WHERE_TEMPFAIL;
	}
	return WHERE_NO_USER;
}

bool local_deliver(const struct queue_message *m, size_t i, const char *path, char *why, size_t whysz)
{
	const char *rcpt = m->env.rcpts[i];
	char prefix[1200];
	snprintf(prefix, sizeof(prefix), "Return-Path: <%s>\nDelivered-To: %s\n", m->env.sender,
		strchr(rcpt, '@') ? rcpt : "postmaster");
	char name[600], err[512];
	enum store_result r = maildir_deliver(path, prefix, m->fd, m->body_offset, m->body_size, name, sizeof(name),
		err, sizeof(err));
	if (r == STORE_OK) {
		log_event(LOG_INFO, "delivered", "qid=%s to=<%s> mailbox=%s file=%s size=%llu", m->env.qid, rcpt, path, name,
			(unsigned long long)m->body_size);
		return true;
	}
	snprintf(why, whysz, "local delivery to %s failed: %s", path, err);
	return false;
}
