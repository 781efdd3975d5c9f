/* resolve.c - what becomes of mail to an address (see directory.h, "recipient
 * resolution"): our domain or not, a user, an alias, the postmaster, or nobody. */
#include "directory/directory.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "util/parse.h"

static enum dir_rcpt_kind tempfail(struct directory *d, struct dir_recipient *out)
{
	snprintf(out->error, sizeof(out->error), "%s", directory_error(d));
	return out->kind = DIR_RCPT_TEMPFAIL;
}

static enum dir_rcpt_kind to_user(const struct dir_user *u, enum dir_rcpt_kind kind, struct dir_recipient *out)
{
	snprintf(out->mailbox.domain, sizeof(out->mailbox.domain), "%s", u->domain);
	snprintf(out->mailbox.local, sizeof(out->mailbox.local), "%s", u->local);
	snprintf(out->user, sizeof(out->user), "%s", u->address);
	out->quota = u->quota;
	snprintf(out->home_node, sizeof(out->home_node), "%s", u->home_node);
	return out->kind = kind;
}

/* Split address into lower-case local part and domain; a bare "postmaster" is the
 * postmaster of the first local domain (or of the host name). */
static bool split_recipient(const struct conf *c, const char *address, char *local, size_t lsz, char *domain,
	size_t dsz)
{
	const char *at = strrchr(address, '@');
	if (!at) {
		snprintf(local, lsz, "postmaster");
		snprintf(domain, dsz, "%s", c->n_local_domains ? c->local_domains[0] : c->hostname);
		return true;
	}
	size_t ln = (size_t)(at - address);
	if (ln >= lsz)
		return false;
	memcpy(local, address, ln);
	local[ln] = '\0';
	snprintf(domain, dsz, "%s", at + 1);
	ascii_lower(local);
	ascii_lower(domain);
	return true;
}

/* The user local@domain is, or the user the alias local@domain points to. */
static enum dir_result user_or_alias(struct directory *d, const char *local, const char *domain, struct dir_user *u,
	bool *via_alias)
{
	*via_alias = false;
	enum dir_result r = directory_user_lookup(d, local, domain, u);
	if (r != DIR_NOT_FOUND)
		return r;
	char target[DIR_ADDRESS_MAX];
	r = directory_alias_lookup(d, local, domain, target, sizeof(target));
	if (r != DIR_OK)
		return r;
	char *tat = strrchr(target, '@');
	if (!tat)
		return DIR_NOT_FOUND;
	*tat = '\0';
	*via_alias = true;
	return directory_user_lookup(d, target, tat + 1, u);
}

/* RFC 5321 §4.5.1: mail to postmaster is never refused nor lost.  It goes to the
 * configured postmaster when that is a user here, else to the domain's own mailbox. */
static enum dir_rcpt_kind to_postmaster(struct directory *d, const struct conf *c, const char *domain,
	struct dir_recipient *out)
{
	const char *pm = c->postmaster;
	const char *pat = strrchr(pm, '@');
	if (pm[0] && pat) {
		char pl[DIR_ADDRESS_MAX];
		size_t pn = (size_t)(pat - pm);
		struct dir_user u;
		if (pn < sizeof(pl)) {
			memcpy(pl, pm, pn);
			pl[pn] = '\0';
			if (directory_user_lookup(d, pl, pat + 1, &u) == DIR_OK)
				return to_user(&u, DIR_RCPT_POSTMASTER, out);
		}
	}
	snprintf(out->mailbox.domain, sizeof(out->mailbox.domain), "%s", domain);
	snprintf(out->mailbox.local, sizeof(out->mailbox.local), "postmaster");
	return out->kind = DIR_RCPT_POSTMASTER;
}

enum dir_rcpt_kind directory_resolve_recipient(struct directory *d, const struct conf *c, const char *address,
	struct dir_recipient *out)
{
	memset(out, 0, sizeof(*out));
	char local[DIR_ADDRESS_MAX], domain[DIR_ADDRESS_MAX];
	if (!split_recipient(c, address, local, sizeof(local), domain, sizeof(domain)))
		return out->kind = DIR_RCPT_UNKNOWN;
	if (!conf_is_local_domain(c, domain)) {
		enum dir_result r = directory_domain_exists(d, domain);
		if (r == DIR_ERROR)
			return tempfail(d, out);
		if (r != DIR_OK)
			return out->kind = DIR_RCPT_NOT_LOCAL;
	}
	struct dir_user u;
	bool via_alias;
	enum dir_result r = user_or_alias(d, local, domain, &u, &via_alias);
	if (r == DIR_ERROR)
		return tempfail(d, out);
	if (r == DIR_OK)
		return to_user(&u, via_alias ? DIR_RCPT_ALIAS : DIR_RCPT_USER, out);
	if (strcmp(local, "postmaster") == 0)
		return to_postmaster(d, c, domain, out);
	return out->kind = DIR_RCPT_UNKNOWN;
}

bool directory_recipient_has_mailbox(const struct dir_recipient *r)
{
	return r->kind == DIR_RCPT_USER || r->kind == DIR_RCPT_ALIAS || r->kind == DIR_RCPT_POSTMASTER;
}
