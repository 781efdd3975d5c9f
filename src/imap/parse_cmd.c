/* parse_cmd.c - the arguments of each IMAP command (RFC 3501 §9 and the
 * extensions listed in parse.h), read from one complete command by the lexer.
 * FETCH and SEARCH are in parse_fetch.c. */
#include <string.h>
#include <strings.h>

#include "imap/parse_internal.h"

#define ID_PAIRS_MAX 30          /* RFC 2971 §3.3 */
#define ID_VALUE_MAX 1024

static char *upper(char *s)
{
	for (char *p = s; p && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return s;
}

static bool atom_copy(struct lex *l, char **out, const char *what)
{
	const char *s;
	size_t n;
	if (!lex_atom(l, false, &s, &n, what))
		return false;
	*out = arena_strndup(l->c->arena, s, n);
	return *out ? true : lex_fail(l, "out of memory");
}

/* id-params-list = "(" *(string SP nstring) ")" / nil (RFC 2971 §4) */
static bool parse_id(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l))
		return false;
	if (lex_word_is(l, "NIL"))
		return true;
	if (!lex_char(l, '('))
		return false;
	size_t cap = 0;
	while (!lex_try_char(l, ')')) {
		if (c->id.n_pairs && !lex_sp(l))
			return false;
		char *k, *v;
		size_t vn;
		if (!lex_string(l, &k, NULL, "an ID field name") || !lex_sp(l) || !lex_nstring(l, &v, &vn, "an ID value"))
			return false;
		if (strlen(k) > 30 || vn > ID_VALUE_MAX)
			return lex_fail(l, "ID field names are at most 30 octets, values at most %d (RFC 2971 §3.3)", ID_VALUE_MAX);
		if (c->id.n_pairs / 2 >= ID_PAIRS_MAX)
			return lex_fail(l, "at most %d ID fields (RFC 2971 §3.3)", ID_PAIRS_MAX);
		if (!lex_grow(l, (void **)&c->id.pairs, &cap, c->id.n_pairs + 1, sizeof(char *)))
			return false;
		c->id.pairs[c->id.n_pairs++] = k;
		c->id.pairs[c->id.n_pairs++] = v;
	}
	return true;
}

/* AUTHENTICATE SP auth-type [SP (base64 / "=")]   (RFC 3501 §6.2.2, RFC 4959) */
static bool parse_authenticate(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l) || !atom_copy(l, &c->auth.mech, "a SASL mechanism (PLAIN or LOGIN)"))
		return false;
	upper(c->auth.mech);
	if (!lex_try_char(l, ' '))
		return true;
	c->auth.has_initial = true;
	if (lex_try_char(l, '=')) {
		c->auth.initial = arena_strndup(c->arena, "", 0);
		return c->auth.initial ? true : lex_fail(l, "out of memory");
	}
	const char *s = l->p;
	while (l->p < l->end && (strchr("+/=", *l->p) || (*l->p >= '0' && *l->p <= '9') ||
	       ((*l->p | 0x20) >= 'a' && (*l->p | 0x20) <= 'z')))
		l->p++;
	if (l->p == s)
		return lex_fail(l, "the initial response must be base64, or \"=\" for an empty one (RFC 4959)");
	c->auth.initial = arena_strndup(c->arena, s, (size_t)(l->p - s));
	return c->auth.initial ? lex_count_arg(l) : lex_fail(l, "out of memory");
}

static bool parse_login(struct lex *l)
{
	struct imap_cmd *c = l->c;
	return lex_sp(l) && lex_astring(l, &c->login.user, NULL, "the user name") && lex_sp(l) &&
		lex_astring(l, &c->login.pass, &c->login.pass_len, "the password");
}

/* XCLIENT SP node-token SP client-address SP login (docs/architecture.md) */
static bool parse_xclient(struct lex *l)
{
	struct imap_cmd *c = l->c;
	return lex_sp(l) && lex_astring(l, &c->xclient.token, NULL, "the node token") && lex_sp(l) &&
		lex_astring(l, &c->xclient.addr, NULL, "the client's address") && lex_sp(l) &&
		lex_astring(l, &c->xclient.login, NULL, "the login");
}

static bool parse_enable(struct lex *l)
{
	struct imap_cmd *c = l->c;
	size_t cap = 0;
	if (lex_at_end(l))
		return lex_fail(l, "name at least one capability to enable (RFC 5161)");
	while (lex_try_char(l, ' ')) {
		char *cap_name;
		if (!atom_copy(l, &cap_name, "a capability name") ||
		    !lex_grow(l, (void **)&c->enable.caps, &cap, c->enable.n, sizeof(char *)))
			return false;
		c->enable.caps[c->enable.n++] = upper(cap_name);
	}
	return true;
}

/* "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
 *     [SP seq-match-data] ")"      (RFC 7162 §3.2.5.2) */
static bool parse_qresync(struct lex *l)
{
	struct imap_cmd *c = l->c;
	c->select.qresync = true;
	if (!lex_sp(l) || !lex_char(l, '(') || !lex_number(l, &c->select.uidvalidity, true, "the UIDVALIDITY") ||
	    !lex_sp(l) || !lex_number64(l, &c->select.modseq, true, "the mod-sequence"))
		return false;
	if (lex_try_char(l, ' ') && lex_peek(l) != '(') {
		c->select.known_uids_given = true;
		if (!lex_seqset(l, &c->select.known_uids, "the known UIDs"))
			return false;
		if (!lex_try_char(l, ' '))
			return lex_char(l, ')');
	}
	if (lex_try_char(l, '(')) {
		c->select.match_given = true;
		if (!lex_seqset(l, &c->select.seq_match, "the known sequence set") || !lex_sp(l) ||
		    !lex_seqset(l, &c->select.uid_match, "the known UID set") || !lex_char(l, ')'))
			return false;
	}
	return lex_char(l, ')');
}

static bool parse_select(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l) || !lex_mailbox(l, &c->mailbox, "the mailbox name"))
		return false;
	if (!lex_try_char(l, ' '))
		return true;
	if (!lex_char(l, '('))
		return false;
	bool first = true;
	while (!lex_try_char(l, ')')) {
		if (!first && !lex_sp(l))
			return false;
		first = false;
		if (lex_word_is(l, "CONDSTORE"))
			c->select.condstore = true;
		else if (lex_word_is(l, "QRESYNC")) {
			if (!parse_qresync(l))
				return false;
		} else {
			char near[64];
			return lex_fail(l, "unknown SELECT parameter at \"%s\" (CONDSTORE and QRESYNC are known)",
				lex_near(l, near, sizeof(near)));
		}
	}
	return true;
}

static bool parse_one_mailbox(struct lex *l)
{
	return lex_sp(l) && lex_mailbox(l, &l->c->mailbox, "the mailbox name");
}

static bool parse_rename(struct lex *l)
{
	return lex_sp(l) && lex_mailbox(l, &l->c->mailbox, "the mailbox's name") && lex_sp(l) &&
		lex_mailbox(l, &l->c->mailbox2, "the new name");
}

struct opt { const char *name; unsigned bit; };

static const struct opt list_select[] = {
	{ "SUBSCRIBED", IMAP_LIST_SEL_SUBSCRIBED }, { "REMOTE", IMAP_LIST_SEL_REMOTE },
	{ "RECURSIVEMATCH", IMAP_LIST_SEL_RECURSIVEMATCH }, { "SPECIAL-USE", IMAP_LIST_SEL_SPECIAL_USE }, { NULL, 0 } };
static const struct opt list_return[] = {
	{ "SUBSCRIBED", IMAP_LIST_RET_SUBSCRIBED }, { "CHILDREN", IMAP_LIST_RET_CHILDREN },
	{ "SPECIAL-USE", IMAP_LIST_RET_SPECIAL_USE }, { NULL, 0 } };
static const struct opt status_atts[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES }, { "RECENT", IMAP_STATUS_RECENT }, { "UIDNEXT", IMAP_STATUS_UIDNEXT },
	{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY }, { "UNSEEN", IMAP_STATUS_UNSEEN },
	{ "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ }, { "SIZE", IMAP_STATUS_SIZE }, { "DELETED", IMAP_STATUS_DELETED },
	{ NULL, 0 } };

static bool option_word(struct lex *l, const struct opt *t, unsigned *bits)
{
	for (; t->name; t++)
		if (lex_word_is(l, t->name)) {
			*bits |= t->bit;
			return lex_count_arg(l);
		}
	return false;
}

/* "(" status-att *(SP status-att) ")" */
static bool parse_status_atts(struct lex *l, unsigned *items)
{
	if (!lex_char(l, '('))
		return false;
	do {
		if (!option_word(l, status_atts, items)) {
			char near[64];
			return lex_fail(l, "unknown STATUS item at \"%s\" (MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN, "
				"HIGHESTMODSEQ, SIZE are known)", lex_near(l, near, sizeof(near)));
		}
	} while (lex_try_char(l, ' '));
	return lex_char(l, ')');
}

static bool parse_status(struct lex *l)
{
	return lex_sp(l) && lex_mailbox(l, &l->c->mailbox, "the mailbox name") && lex_sp(l) &&
		parse_status_atts(l, &l->c->status_items);
}

static bool parse_options(struct lex *l, const struct opt *t, unsigned *bits, const char *what)
{
	if (!lex_char(l, '('))
		return false;
	bool first = true;
	while (!lex_try_char(l, ')')) {
		if (!first && !lex_sp(l))
			return false;
		first = false;
		if (t == list_return && lex_word_is(l, "STATUS")) {   /* RFC 5819 */
			*bits |= IMAP_LIST_RET_STATUS;
			if (!lex_sp(l) || !parse_status_atts(l, &l->c->list.status_items))
				return false;
		} else if (!option_word(l, t, bits)) {
			char near[64];
			return lex_fail(l, "unknown %s at \"%s\"", what, lex_near(l, near, sizeof(near)));
		}
	}
	return true;
}

static bool add_pattern(struct lex *l, size_t *cap)
{
	struct imap_cmd *c = l->c;
	char *pat;
	if (!lex_list_mailbox(l, &pat) || !lex_grow(l, (void **)&c->list.patterns, cap, c->list.n_patterns, sizeof(char *)))
		return false;
	c->list.patterns[c->list.n_patterns++] = pat;
	return true;
}

/* list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
 * (RFC 5258 §6); LSUB SP mailbox SP list-mailbox */
static bool parse_list(struct lex *l)
{
	struct imap_cmd *c = l->c;
	size_t cap = 0;
	if (!lex_sp(l))
		return false;
	if (c->name == IMAP_CMD_LIST && lex_peek(l) == '(') {
		c->list.extended = true;
		if (!parse_options(l, list_select, &c->list.select_opts, "LIST selection option") || !lex_sp(l))
			return false;
		unsigned alone = IMAP_LIST_SEL_RECURSIVEMATCH | IMAP_LIST_SEL_REMOTE;
		if ((c->list.select_opts & IMAP_LIST_SEL_RECURSIVEMATCH) && !(c->list.select_opts & ~alone))
			return lex_fail(l, "RECURSIVEMATCH needs another selection option, such as SUBSCRIBED (RFC 5258 §3)");
	}
	if (!lex_mailbox(l, &c->list.reference, "the reference name") || !lex_sp(l))
		return false;
	if (c->name == IMAP_CMD_LIST && lex_try_char(l, '(')) {
		c->list.extended = true;
		do {
			if (!add_pattern(l, &cap))
				return false;
		} while (lex_try_char(l, ' '));
		if (!lex_char(l, ')'))
			return false;
	} else if (!add_pattern(l, &cap)) {
		return false;
	}
	if (c->name == IMAP_CMD_LIST && lex_try_char(l, ' ')) {
		c->list.extended = true;
		if (!lex_word_is(l, "RETURN"))
			return lex_fail(l, "expected RETURN (...) after the pattern");
		return lex_sp(l) && parse_options(l, list_return, &c->list.return_opts, "LIST return option");
	}
	return true;
}

/* append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal */
static bool parse_append(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l) || !lex_mailbox(l, &c->mailbox, "the mailbox name") || !lex_sp(l))
		return false;
	if (lex_peek(l) == '(') {
		if (!lex_flag_list(l, &c->append.flags, &c->append.n_flags) || !lex_sp(l))
			return false;
	}
	if (lex_peek(l) == '"') {
		char *d;
		size_t n;
		if (!lex_string(l, &d, &n, "the date-time"))
			return false;
		if (!imap_parse_datetime(d, n, &c->append.date))
			return lex_fail(l, "the date-time must look like \"01-Dec-2026 18:25:00 +0000\" (RFC 3501 §9)");
		c->append.date_given = true;
		if (!lex_sp(l))
			return false;
	}
	/* append-data =/ "UTF8" SP "(" literal8 ")" (RFC 6855 §4): a message with UTF-8
	 * header fields, from a client that enabled UTF8=ACCEPT. */
	bool utf8 = lex_word_is(l, "UTF8");
	if (utf8) {
		if (!l->utf8)
			return lex_fail(l, "APPEND UTF8 needs ENABLE UTF8=ACCEPT first (RFC 6855 §4)");
		if (!lex_sp(l) || !lex_char(l, '(') || !lex_char(l, '~'))
			return false;
	}
	if (lex_peek(l) != '{')
		return lex_fail(l, utf8 ? "APPEND UTF8 takes the message as a literal8 (~{N}) in parentheses (RFC 6855 §4)"
			: "the message must be sent as a literal {N} (RFC 3501 §6.3.11)");
	char *data;
	if (!lex_string(l, &data, &c->append.len, "the message"))
		return false;
	c->append.data = data;
	return !utf8 || lex_char(l, ')');
}

/* SETQUOTA SP quota-root SP "(" [setquota-resource *(SP setquota-resource)] ")" */
static bool parse_setquota(struct lex *l)
{
	if (!lex_sp(l) || !lex_astring(l, &l->c->quota_root, NULL, "the quota root") || !lex_sp(l) || !lex_char(l, '('))
		return false;
	bool first = true;
	while (!lex_try_char(l, ')')) {
		const char *s;
		size_t n;
		uint64_t v;
		if ((!first && !lex_sp(l)) || !lex_atom(l, false, &s, &n, "a resource name") || !lex_sp(l) ||
		    !lex_number64(l, &v, false, "the limit"))
			return false;
		first = false;
	}
	return true;
}

/* STORE SP sequence-set [SP "(" UNCHANGEDSINCE SP mod-sequence-valzer ")"]
 *     SP store-att-flags   (RFC 3501 §6.4.6, RFC 7162 §3.1.3) */
static bool parse_store(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l) || !lex_seqset(l, &c->set, "the message set") || !lex_sp(l))
		return false;
	if (lex_try_char(l, '(')) {
		if (!lex_word_is(l, "UNCHANGEDSINCE"))
			return lex_fail(l, "the only STORE modifier is UNCHANGEDSINCE (RFC 7162)");
		c->store.unchangedsince_given = true;
		if (!lex_sp(l) || !lex_number64(l, &c->store.unchangedsince, false, "UNCHANGEDSINCE") ||
		    !lex_char(l, ')') || !lex_sp(l))
			return false;
	}
	c->store.op = lex_try_char(l, '+') ? IMAP_STORE_ADD : lex_try_char(l, '-') ? IMAP_STORE_REMOVE : IMAP_STORE_SET;
	if (lex_word_is(l, "FLAGS.SILENT"))
		c->store.silent = true;
	else if (!lex_word_is(l, "FLAGS"))
		return lex_fail(l, "expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT) and the flags");
	if (!lex_sp(l))
		return false;
	if (lex_peek(l) == '(')
		return lex_flag_list(l, &c->store.flags, &c->store.n_flags);
	size_t cap = 0;
	do {
		char *f;
		if (!lex_flag(l, &f) || !lex_grow(l, (void **)&c->store.flags, &cap, c->store.n_flags, sizeof(char *)))
			return false;
		c->store.flags[c->store.n_flags++] = f;
	} while (lex_try_char(l, ' '));
	return true;
}

static bool parse_copy(struct lex *l)
{
	return lex_sp(l) && lex_seqset(l, &l->c->set, "the message set") && lex_sp(l) &&
		lex_mailbox(l, &l->c->mailbox, "the destination mailbox");
}

bool parse_arguments(struct lex *l)
{
	struct imap_cmd *c = l->c;
	switch (c->name) {
	case IMAP_CMD_ID: return parse_id(l);
	case IMAP_CMD_COMPRESS: return lex_sp(l) && atom_copy(l, &c->compress, "a compression mechanism (DEFLATE)") &&
		upper(c->compress);
	case IMAP_CMD_AUTHENTICATE: return parse_authenticate(l);
	case IMAP_CMD_LOGIN: return parse_login(l);
	case IMAP_CMD_XCLIENT: return parse_xclient(l);
	case IMAP_CMD_ENABLE: return parse_enable(l);
	case IMAP_CMD_SELECT: case IMAP_CMD_EXAMINE: return parse_select(l);
	case IMAP_CMD_CREATE: case IMAP_CMD_DELETE: case IMAP_CMD_SUBSCRIBE: case IMAP_CMD_UNSUBSCRIBE:
	case IMAP_CMD_GETQUOTAROOT:
		return parse_one_mailbox(l);
	case IMAP_CMD_GETQUOTA: return lex_sp(l) && lex_astring(l, &c->quota_root, NULL, "the quota root");
	case IMAP_CMD_SETQUOTA: return parse_setquota(l);
	case IMAP_CMD_RENAME: return parse_rename(l);
	case IMAP_CMD_LIST: case IMAP_CMD_LSUB: return parse_list(l);
	case IMAP_CMD_STATUS: return parse_status(l);
	case IMAP_CMD_APPEND: return parse_append(l);
	case IMAP_CMD_EXPUNGE: return c->uid ? lex_sp(l) && lex_seqset(l, &c->set, "the UID set") : true;
	case IMAP_CMD_FETCH: return parse_fetch_args(l);
	case IMAP_CMD_SEARCH: return parse_search_args(l);
	case IMAP_CMD_STORE: return parse_store(l);
	case IMAP_CMD_COPY: case IMAP_CMD_MOVE: return parse_copy(l);
	default: return true;   /* no arguments: lex_end() checks */
	}
}
