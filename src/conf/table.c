/* table.c - the settings table (see conf.h).
 *
 * Each [server], [limits] and [queue] key is one row of `conf_settings`: its type,
 * where it lives in struct conf, its default, its bounds and a line of help.  The same
 * table fills defaults, parses and checks the file (the reader is conf.c).  Also here:
 * the built-in default file, and the value setters the rows' types use. */
#include "conf/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"
#include "util/parse.h"
#include "wire/enh.h"

const char conf_embedded_default[] =
	"[server]\n"
	"hostname = localhost\n"
	"data_dir = ./var\n"
	"local_domains = example.test\n"
	"\n"
	"[listener smtp]\n"
	"address = 127.0.0.1\n"
	"port = 2525\n"
	"role = mx\n"
	"tls = starttls\n"
	"\n"
	"[listener submission]\n"
	"address = 127.0.0.1\n"
	"port = 2587\n"
	"role = submission\n"
	"tls = starttls\n"
	"\n"
	"[listener submissions]\n"
	"address = 127.0.0.1\n"
	"port = 2465\n"
	"role = submission\n"
	"tls = implicit\n"
	"\n"
	"[listener pop3]\n"
	"address = 127.0.0.1\n"
	"port = 2110\n"
	"role = pop3\n"
	"tls = starttls\n"
	"\n"
	"[listener pop3s]\n"
	"address = 127.0.0.1\n"
	"port = 2995\n"
	"role = pop3\n"
	"tls = implicit\n"
	"\n"
	"[listener imap]\n"
	"address = 127.0.0.1\n"
	"port = 2143\n"
	"role = imap\n"
	"tls = starttls\n"
	"\n"
	"[listener imaps]\n"
	"address = 127.0.0.1\n"
	"port = 2993\n"
	"role = imap\n"
	"tls = implicit\n"
	"\n"
	"[listener http]\n"
	"address = 127.0.0.1\n"
	"port = 2080\n"
	"role = http\n";

#define STR(sec, k, def, help) { sec, #k, T_STRING, offsetof(struct conf, k), sizeof(((struct conf *)0)->k), def, 0, 0, help }
#define NUM(sec, k, t, def, lo, hi, help) { sec, #k, t, offsetof(struct conf, k), 0, def, lo, hi, help }

const struct setting conf_settings[] = {
	STR("server", hostname, "localhost", "name in the greeting, EHLO reply and Received headers"),
	STR("server", data_dir, "./var", "directory for directory.db, queue/ and mail/"),
	STR("server", user, "", "user to run as after binding, when started as root"),
	{ "server", "run_as_root", T_BOOL, offsetof(struct conf, run_as_root), 0, "no", 0, 0,
		"started as root without user =, keep serving as root (refused otherwise)" },
	STR("server", local_socket, "", "the local submission socket sendmail speaks to (empty: data_dir/run/submit.sock; none: no socket)"),
	STR("server", maildrop_dir, "", "where sendmail leaves messages while the server is down, picked up at start and every few seconds (empty: data_dir/maildrop)"),
	STR("server", local_domain, "", "the domain of local users' addresses: sendmail's envelope sender is USER@local_domain (empty: hostname)"),
	{ "server", "local_domains", T_DOMAINS, 0, 0, "", 0, 0, "domains delivered locally" },
	STR("server", postmaster, "", "mailbox for postmaster@ of local domains without one"),
	NUM("server", pop_before_smtp, T_DURATION, "0", 0, 86400, "relay for an address that logged in to POP3 this recently (0: off)"),
	{ "server", "trusted_networks", T_NETWORKS, 0, 0, "", 0, 0, "client networks allowed to relay without logging in" },
	{ "server", "allow_open_relay", T_BOOL, offsetof(struct conf, allow_open_relay), 0, "no", 0, 0,
		"accept trusted_networks wider than " "a public /8 (IPv4) or /32 (IPv6): anyone there may relay" },
	NUM("server", shutdown_timeout, T_DURATION, "10s", 1, 600, "longest stop on SIGTERM: clients and outbound deliveries still running then are cut off"),
	NUM("server", log_level, T_CHOICE, "info", 0, 0, "the least important log lines written: debug, info, warn or error (applied again on SIGHUP)"),
	{ "tls", "certificate", T_STRING, offsetof(struct conf, tls_certificate), sizeof(((struct conf *)0)->tls_certificate), "", 0, 0, "PEM certificate chain; empty: generate a self-signed one" },
	{ "tls", "key", T_STRING, offsetof(struct conf, tls_key), sizeof(((struct conf *)0)->tls_key), "", 0, 0, "PEM private key" },
	{ "tls", "ciphers", T_STRING, offsetof(struct conf, tls_ciphers), sizeof(((struct conf *)0)->tls_ciphers),
		"ECDHE+AESGCM:ECDHE+CHACHA20", 0, 0, "TLS 1.2 cipher list (TLS 1.3 suites are OpenSSL's defaults)" },
	{ "auth", "account_ip_failures", T_COUNT, offsetof(struct conf, auth_account_ip_failures), 0, "5", 1, 100000, "failed logins to one account from one address before that pair (only) is blocked" },
	{ "auth", "ip_accounts", T_COUNT, offsetof(struct conf, auth_ip_accounts), 0, "5", 2, 32, "distinct accounts failing to log in from one address before the address is blocked (password spraying)" },
	{ "auth", "ip_failures", T_COUNT, offsetof(struct conf, auth_ip_failures), 0, "50", 1, 100000, "failed logins from one address, over all accounts, before the address is blocked" },
	{ "auth", "known_for", T_DURATION, offsetof(struct conf, auth_known_for), 0, "7d", 0, 7776000, "an account that logged in from an address is not blocked by the address's block for this long (0: never)" },
	{ "auth", "window", T_DURATION, offsetof(struct conf, auth_window), 0, "15m", 10, 86400, "how long a failed login is remembered" },
	{ "auth", "block", T_DURATION, offsetof(struct conf, auth_block), 0, "15m", 10, 86400, "how long a block lasts" },
	{ "auth", "cache_ttl", T_DURATION, offsetof(struct conf, auth_cache_ttl), 0, "1h", 0, 86400, "how long a successful password check is remembered (0: never)" },
	{ "auth", "legacy_app_passwords", T_BOOL, offsetof(struct conf, auth_legacy_app_passwords), 0, "yes", 0, 0, "accept app passwords made before they had selectors (each costs one hash check more for passwords of their form); no once all are reissued" },
	{ "auth", "check_from_header", T_BOOL, offsetof(struct conf, check_from_header), 0, "yes", 0, 0, "the From: of submitted mail must be an address the user owns" },
	NUM("limits", message_size, T_SIZE, "25M", 1024, 2ull << 30, "largest message accepted (SIZE)"),
	NUM("limits", recipients, T_COUNT, "100", 1, 10000, "recipients per message"),
	NUM("limits", line_length, T_COUNT, "1000", 512, 65536, "longest command line, CRLF included"),
	NUM("limits", message_line_length, T_COUNT, "10000", 998, 1000000, "longest line in a message (CRLF not counted); longer: 550 " ENH_PERM_MEDIA),
	NUM("limits", idle_timeout, T_DURATION, "5m", 10, 3600, "silence before a client is dropped"),
	NUM("limits", connections, T_COUNT, "1000", 1, 100000, "concurrent connections in total"),
	NUM("limits", connections_per_ip, T_COUNT, "20", 1, 100000, "concurrent connections per client address"),
	NUM("limits", connections_reserved, T_COUNT, "10", 0, 50, "percent of connections kept for addresses that have none open"),
	NUM("limits", bad_commands, T_COUNT, "10", 1, 1000, "bad commands before the session is closed"),
	NUM("limits", line_timeout, T_DURATION, "1m", 1, 3600, "time to send one command line, first byte to line end"),
	NUM("limits", data_min_rate, T_SIZE, "1K", 0, 1ull << 30, "slowest message transfer, octets per second (0: no minimum)"),
	NUM("limits", data_rate_grace, T_DURATION, "30s", 1, 3600, "time into DATA/BDAT before data_min_rate applies"),
	NUM("limits", tls_handshake_timeout, T_DURATION, "30s", 1, 600, "time to complete a TLS handshake"),
	NUM("limits", login_timeout, T_DURATION, "2m", 1, 3600, "submission and POP3: time from connecting to logging in"),
	NUM("limits", session_timeout, T_DURATION, "1h", 1, 86400, "longest session"),
	NUM("limits", refused_recipients, T_COUNT, "50", 1, 100000, "recipients refused as unknown (or relaying denied) in one session before it is closed with 421 " ENH_TEMP_SECURITY),
	NUM("limits", refused_recipients_delay_after, T_COUNT, "10", 0, 100000, "refused recipients answered at once; each one after waits longer"),
	NUM("limits", refused_recipient_delay_ms, T_COUNT, "250", 0, 5000, "added wait per refused recipient past the allowance, in milliseconds (at most 5 s each; 0: never wait)"),
	{ "limits", "messages_per_hour", T_COUNT, offsetof(struct conf, limits_messages_per_hour), 0, "300", 0, 10000000,
		"messages one logged-in account may send in any hour; past it MAIL gets 451 " ENH_TEMP_NOT_AUTHORIZED " saying when sending resumes (0: no limit; postern user limit sets one account's)" },
	{ "limits", "recipients_per_day", T_COUNT, offsetof(struct conf, limits_recipients_per_day), 0, "2000", 0, 100000000,
		"recipients one logged-in account may send to in any 24 hours; past it RCPT gets 451 " ENH_TEMP_NOT_AUTHORIZED " (0: no limit)" },
	{ "limits", "domain_messages_per_hour", T_COUNT, offsetof(struct conf, limits_domain_messages_per_hour), 0, "3000", 0, 100000000,
		"messages per hour from one sending domain (the envelope sender's; the login's for <>), every account and trusted network together (0: no limit)" },
	{ "limits", "domain_recipients_per_day", T_COUNT, offsetof(struct conf, limits_domain_recipients_per_day), 0, "20000", 0, 1000000000,
		"recipients per 24 hours from one sending domain (0: no limit)" },
	{ "limits", "burst_hold", T_BOOL, offsetof(struct conf, limits_burst_hold), 0, "no", 0, 0,
		"hold in the queue (postern queue list --held) the mail of an account sending burst_factor times its usual hourly volume, and tell the administrator and the user" },
	{ "limits", "burst_factor", T_COUNT, offsetof(struct conf, limits_burst_factor), 0, "10", 2, 1000,
		"a burst: this many times the account's usual hourly volume (its average over the last 7 days) in the last hour" },
	{ "limits", "burst_floor", T_COUNT, offsetof(struct conf, limits_burst_floor), 0, "10", 1, 100000,
		"messages per hour taken as the usual volume at the least, so that a new or quiet account is not held for its first messages" },
	STR("delivery", resolver, "", "DNS server to ask (ADDR or ADDR@PORT); empty: /etc/resolv.conf"),
	NUM("delivery", remote_port, T_COUNT, "25", 1, 65535, "port of remote mail servers"),
	NUM("delivery", max_lifetime, T_DURATION, "5d", 1, 30 * 86400, "how long a message is retried before it is returned"),
	NUM("delivery", delay_notice, T_DURATION, "4h", 0, 30 * 86400, "when the sender is told a message is delayed (0: never)"),
	NUM("delivery", domain_concurrency, T_COUNT, "10", 1, 1000, "deliveries at once to one domain"),
	NUM("delivery", connect_timeout, T_DURATION, "30s", 1, 600, "time to connect to a remote server"),
	NUM("delivery", command_timeout, T_DURATION, "5m", 1, 3600, "time to wait for each remote reply"),
	NUM("delivery", messages_per_connection, T_COUNT, "100", 1, 10000, "transactions over one remote connection; then QUIT and a fresh one"),
	NUM("delivery", connection_cache_time, T_DURATION, "2s", 0, 300, "how long an idle remote connection is kept for the next message to the same destination (0: off)"),
	NUM("delivery", connection_cache_per_destination, T_COUNT, "10", 1, 1000, "idle remote connections kept for one destination"),
	NUM("delivery", connection_cache_max, T_COUNT, "64", 1, 1024, "idle remote connections kept in all"),
	{ "delivery", "dane", T_BOOL, offsetof(struct conf, dane), 0, "on", 0, 0, "authenticate MX hosts by their DNSSEC-signed TLSA records (RFC 7672); needs dnssec_trust_anchor" },
	{ "delivery", "mta_sts", T_BOOL, offsetof(struct conf, mta_sts), 0, "on", 0, 0, "honour the MTA-STS policies of receiving domains (RFC 8461)" },
	STR("delivery", dnssec_trust_anchor, "/usr/share/dns/root.key", "DNSSEC trust anchor (DS/DNSKEY records) for the resolver; the default is skipped when absent; none: no validation"),
	STR("delivery", tls_ca_file, "", "PEM file of CAs trusted besides the system's, for MTA-STS certificate checks and policy fetches"),
	{ "relay", "host", T_STRING, offsetof(struct conf, relay_host), sizeof(((struct conf *)0)->relay_host), "", 0, 0, "smarthost: send all non-local mail through this server" },
	{ "relay", "port", T_COUNT, offsetof(struct conf, relay_port), 0, "587", 1, 65535, "smarthost port" },
	{ "relay", "tls", T_TLS, offsetof(struct conf, relay_tls), 0, "starttls", 0, 0, "smarthost TLS: starttls, implicit or none" },
	{ "relay", "tls_verify", T_BOOL, offsetof(struct conf, relay_tls_verify), 0, "yes", 0, 0, "refuse a smarthost certificate that does not verify" },
	{ "relay", "credentials", T_STRING, offsetof(struct conf, relay_credentials), sizeof(((struct conf *)0)->relay_credentials), "", 0, 0, "file with \"user password\" for the smarthost (mode 600)" },
	{ "quota", "full_is_permanent", T_BOOL, offsetof(struct conf, quota_full_permanent), 0, "no", 0, 0, "a full mailbox gets 552 " ENH_PERM_MAILBOX_FULL " (permanent) instead of 452 " ENH_TEMP_MAILBOX_FULL },
	{ "quota", "warning_percent", T_COUNT, offsetof(struct conf, quota_warning_percent), 0, "90", 1, 100, "usage at which the owner is warned, once" },
	{ "mailauth", "authserv_id", T_STRING, offsetof(struct conf, authserv_id), sizeof(((struct conf *)0)->authserv_id), "", 0, 0,
		"authserv-id of the Authentication-Results field (RFC 8601); incoming fields claiming it are removed (empty: [server] hostname)" },
	{ "mailauth", "dmarc", T_CHOICE, offsetof(struct conf, mailauth_dmarc), 0, "check", 0, 0,
		"check: on mx listeners, verify DKIM, evaluate DMARC (RFC 7489) and add Authentication-Results; off: none of that" },
	{ "mailauth", "dmarc_reject", T_BOOL, offsetof(struct conf, dmarc_reject), 0, "yes", 0, 0,
		"honour p=reject: refuse (550 " ENH_PERM_NOT_AUTHORIZED ") mail that fails DMARC for a domain that asks for it; no: deliver it as quarantined" },
	{ "mailauth", "dmarc_quarantine_header", T_STRING, offsetof(struct conf, dmarc_quarantine_header),
		sizeof(((struct conf *)0)->dmarc_quarantine_header), "X-Postern-Quarantine", 0, 0,
		"header field added to mail whose DMARC policy asks for quarantine, for mailbox filters (empty: only Authentication-Results says so)" },
	{ "mailauth", "dmarc_timeout", T_DURATION, offsetof(struct conf, dmarc_timeout), 0, "30s", 3, 120,
		"time for the DNS lookups of one message's DKIM and DMARC checks; past it the result is temporary (451 " ENH_TEMP_DIRECTORY_SERVER ")" },
	{ "mailauth", "spf", T_CHOICE, offsetof(struct conf, mailauth_spf), 0, "check", 0, 0,
		"SPF (RFC 7208) at MAIL FROM on mx listeners: check records the result, off skips it" },
	{ "mailauth", "spf_fail_refuse", T_BOOL, offsetof(struct conf, mailauth_spf_fail_refuse), 0, "no", 0, 0,
		"refuse at MAIL (550 " ENH_PERM_SPF_FAILED ") a sender whose domain's SPF record fails the client and ends in -all; "
		"no: leave the decision to DMARC at the end of DATA" },
	{ "mailauth", "spf_timeout", T_DURATION, offsetof(struct conf, mailauth_spf_timeout), 0, "20s", 1, 120,
		"time for all DNS lookups of one SPF check; past it the result is temperror" },
	{ "mailauth", "skip_networks", T_NETWORKS, 0, 0, "127.0.0.0/8 ::1/128", 0, 0,
		"clients not checked by SPF, DKIM or DMARC (mail from this host: web applications, cron); grants no relaying; empty: check every client" },
	{ "mta-sts", "mode", T_CHOICE, offsetof(struct conf, mta_sts_mode), 0, "testing", 0, 0,
		"the MTA-STS policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt and announced by postern dns (RFC 8461): "
		"enforce, testing (report only), none (withdraw a policy), off (publish and serve nothing)" },
	{ "mta-sts", "max_age", T_DURATION, offsetof(struct conf, mta_sts_max_age), 0, "7d", 86400, 31557600,
		"how long senders may cache the policy (RFC 8461 §3.2: at most a year; weeks are recommended)" },
	{ "mta-sts", "mx", T_STRING, offsetof(struct conf, mta_sts_mx), sizeof(((struct conf *)0)->mta_sts_mx), "", 0, 0,
		"the MX host names the policy allows, comma separated, \"*.example.org\" for a wildcard (empty: [server] hostname)" },
	{ "mailauth", "dkim_signing", T_BOOL, offsetof(struct conf, dkim_signing), 0, "yes", 0, 0,
		"sign mail that logged-in users and trusted networks send to other domains with the DKIM keys of its From: domain (postern dkim keygen)" },
	{ "http", "header_max", T_SIZE, offsetof(struct conf, http_header_max), 0, "16K", 1024, 1u << 20,
		"longest request line and header fields of one HTTP request; longer: 400 and the connection is closed" },
	{ "http", "body_max", T_SIZE, offsetof(struct conf, http_body_max), 0, "64K", 1024, 16u << 20,
		"largest HTTP request body (an Autodiscover POST is about 1K); larger: 413 and the connection is closed" },
	{ "http", "request_timeout", T_DURATION, offsetof(struct conf, http_request_timeout), 0, "30s", 1, 600,
		"time to send one whole HTTP request (a slow client is closed after it); also how long an idle keep-alive connection stays open" },
	{ "http", "threads", T_COUNT, offsetof(struct conf, http_threads), 0, "2", 1, 64,
		"web worker threads (each with its own directory handle) that answer HTTP requests" },
	{ "imap", "threads", T_COUNT, offsetof(struct conf, imap_threads), 0, "4", 1, 64,
		"IMAP worker threads: every folder command runs on one, one command per session at a time" },
	{ "imap", "autologout", T_DURATION, offsetof(struct conf, imap_autologout), 0, "30m", 1800, 86400,
		"an IMAP session silent this long is logged out (RFC 3501 §5.4: at least 30 minutes; IDLE clients renew every 29)" },
	{ "imap", "idle_poll", T_DURATION, offsetof(struct conf, imap_idle_poll), 0, "1s", 1, 60,
		"how often a session in IDLE checks its folder for changes by other sessions and programs" },
	{ "web", "session_idle", T_DURATION, offsetof(struct conf, web_session_idle), 0, "30m", 1, 86400,
		"the account pages (service account): a session without a request this long ends (sign in again)" },
	{ "web", "session_max", T_DURATION, offsetof(struct conf, web_session_max), 0, "12h", 60, 30 * 86400,
		"the account pages: a session ends this long after signing in, however much it is used" },
	{ "events", "enabled", T_BOOL, offsetof(struct conf, events_enabled), 0, "yes", 0, 0,
		"keep a record of each refusal and of what became of each message (data_dir/events.db), for the users' \"My outgoing mail\" page and the refusal statistics" },
	{ "events", "retention", T_DURATION, offsetof(struct conf, events_retention), 0, "14d", 86400, 366 * 86400,
		"how long event records are kept (whole days; removed at start and hourly)" },
	{ "events", "queue_max", T_COUNT, offsetof(struct conf, events_queue_max), 0, "4096", 1, 1000000,
		"records waiting for the events writer; past it new records are dropped and counted (postern_events_dropped_total), never waited for" },
	{ "events", "account_max", T_COUNT, offsetof(struct conf, events_account_max), 0, "5000", 10, 10000000,
		"records kept per account (the oldest go first); records without a login share a cap 20 times larger" },
	{ "directory", "backend", T_CHOICE, offsetof(struct conf, directory_backend), 0, "sqlite", 0, 0,
		"where domains, users, aliases and app passwords live: sqlite (data_dir/directory.db, one machine) or "
		"postgresql (the server named by connection, shared by several nodes)" },
	{ "directory", "connection", T_STRING, offsetof(struct conf, directory_connection),
		sizeof(((struct conf *)0)->directory_connection), "", 0, 0,
		"backend postgresql: a libpq connection string (\"host=db.example port=5432 dbname=postern user=postern\"; "
		"a password belongs in ~/.pgpass or PGPASSFILE, not here)" },
	{ "directory", "pool", T_COUNT, offsetof(struct conf, directory_pool), 0, "2", 1, 64,
		"backend postgresql: connections each directory handle (one per worker thread) may open" },
	{ "directory", "timeout", T_DURATION, offsetof(struct conf, directory_timeout), 0, "5s", 1, 600,
		"backend postgresql: how long a lookup may take (connecting included) before the mail waiting on it "
		"gets a temporary refusal that says the directory did not answer" },
	{ "cluster", "node", T_STRING, offsetof(struct conf, cluster_node), sizeof(((struct conf *)0)->cluster_node), "", 0, 0,
		"this node's name among several sharing one PostgreSQL directory ([a-z0-9-], at most 32); empty: a single server" },
	{ "cluster", "secret_file", T_STRING, offsetof(struct conf, cluster_secret_file),
		sizeof(((struct conf *)0)->cluster_secret_file), "", 0, 0,
		"a file holding the secret every node shares (at least 32 bytes, not readable by others): it signs the tokens nodes prove themselves with" },
	{ "cluster", "heartbeat", T_DURATION, offsetof(struct conf, cluster_heartbeat), 0, "2s", 1, 3600,
		"how often this node refreshes its row of the node registry (postern_nodes)" },
	{ "cluster", "down_after", T_DURATION, offsetof(struct conf, cluster_down_after), 0, "10s", 2, 86400,
		"a node whose registry row is older than this is shown and treated as down" },
	{ "cluster", "advertise", T_STRING, offsetof(struct conf, cluster_advertise),
		sizeof(((struct conf *)0)->cluster_advertise), "", 0, 0, "host other nodes use to reach this node's listeners bound to a wildcard address (empty: the bound address)" },
	NUM("queue", commit_threads, T_COUNT, "16", 1, 256, "threads that commit accepted messages (each fsyncs its own file; they share the directory fsync)"),
	NUM("queue", commit_batch_wait, T_MILLIS, "2ms", 0, 100, "longest wait of a commit for others still in flight to share its directory fsync (0: never wait; a lone commit never waits)"),
	NUM("queue", delivery_threads, T_COUNT, "8", 1, 256, "threads that deliver (local and remote)"),
	NUM("queue", retry_min, T_DURATION, "5m", 1, 86400, "first wait after a temporary failure"),
	NUM("queue", retry_max, T_DURATION, "1h", 1, 7 * 86400, "longest wait between attempts"),
	NUM("queue", min_free, T_SIZE, "64M", 0, 1ull << 40, "free space kept on the queue's filesystem: below it MAIL gets 452 " ENH_TEMP_SYSTEM_FULL),
	NUM("queue", cleanup_interval, T_DURATION, "1h", 1, 7 * 86400, "how often leftovers (old Maildir tmp/ files, stale queue files) are removed"),
};
#define N_SETTINGS (sizeof(conf_settings) / sizeof(conf_settings[0]))
const size_t conf_n_settings = N_SETTINGS;
_Static_assert(N_SETTINGS <= CONF_MAX_SETTINGS, "raise CONF_MAX_SETTINGS");

bool conf_set_string(char *dst, size_t dstsz, const char *v)
{
	size_t n = strlen(v);
	if (n >= dstsz)
		return false;
	memcpy(dst, v, n + 1);
	return true;
}

/* A domain list: commas and/or spaces between names; names lower-cased. */
static const char *set_domains(struct conf *c, const char *v)
{
	c->n_local_domains = 0;
	char tmp[4096];
	if (!conf_set_string(tmp, sizeof(tmp), v))
		return "the list is too long";
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (c->n_local_domains >= CONF_MAX_DOMAINS)
			return "too many domains (at most 64 here; add more with `postern domain add`)";
		size_t n = strlen(tok);
		if (n == 0 || n >= CONF_NAME_MAX || tok[n - 1] == '.' || tok[0] == '.')
			return "a domain name is empty, too long, or starts or ends with a dot";
		for (size_t i = 0; i < n; i++) {
			char ch = tok[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
				return "a domain name may hold only letters, digits, '-' and '.'";
		}
		ascii_lower(tok);
		memcpy(c->local_domains[c->n_local_domains++], tok, n + 1);
	}
	return NULL;
}

/* [server] trusted_networks or [mailauth] skip_networks. */
static const char *set_networks(struct conf *c, const struct setting *s, const char *v)
{
	bool skip = strcmp(s->key, "skip_networks") == 0;
	struct conf_network *nets = skip ? c->skip_networks : c->trusted_networks;
	size_t *n = skip ? &c->n_skip_networks : &c->n_trusted_networks;
	*n = 0;
	char tmp[4096];
	if (!conf_set_string(tmp, sizeof(tmp), v))
		return "the list is too long";
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (*n >= CONF_MAX_NETWORKS)
			return "too many networks (at most 64)";
		if (!conf_parse_network(tok, &nets[*n]))
			return "a network is not an address or address/prefix (e.g. 192.0.2.0/24, 2001:db8::/32)";
		(*n)++;
	}
	return NULL;
}

static const struct { const char *section, *key, *words; } choice_lists[] = {
	{ "mailauth", "spf", "off|check" },   /* enum conf_spf_mode */
	{ "mailauth", "dmarc", "off|check" },   /* enum conf_dmarc_mode */
	{ "mta-sts", "mode", "off|none|testing|enforce" },   /* enum conf_mta_sts_mode */
	{ "directory", "backend", "sqlite|postgresql" },   /* enum conf_directory_backend */
	{ "server", "log_level", "debug|info|warn|error" },   /* enum log_level (util/log.h) */
};

const char *conf_choices(const struct setting *s)
{
	for (size_t i = 0; i < sizeof(choice_lists) / sizeof(choice_lists[0]); i++)
		if (strcmp(choice_lists[i].section, s->section) == 0 && strcmp(choice_lists[i].key, s->key) == 0)
			return choice_lists[i].words;
	return "";
}

/* One of the words of conf_choices(s); stores its index. */
static const char *set_choice(const struct setting *s, const char *v, uint64_t *out)
{
	size_t vlen = strlen(v);
	uint64_t index = 0;
	const char *choices = conf_choices(s);
	for (const char *w = choices; *w; index++) {
		size_t wlen = strcspn(w, "|");
		if (wlen == vlen && strncmp(w, v, vlen) == 0) {
			*out = index;
			return NULL;
		}
		w += wlen + (w[wlen] == '|');
	}
	static _Thread_local char why[128];
	snprintf(why, sizeof(why), "is not one of %s", choices);
	return why;
}

const char *conf_set_value(struct conf *c, const struct setting *s, const char *v)
{
	char *base = (char *)c;
	uint64_t n;
	switch (s->type) {
	case T_STRING:
		return conf_set_string(base + s->offset, s->size, v) ? NULL : "the value is too long";
	case T_DOMAINS:
		return set_domains(c, v);
	case T_NETWORKS:
		return set_networks(c, s, v);
	case T_BOOL:
		return parse_bool(v, (bool *)(void *)(base + s->offset)) ? NULL : "is not yes or no";
	case T_TLS: {
		enum tls_mode *m = (enum tls_mode *)(void *)(base + s->offset);
		if (strcmp(v, "none") == 0)
			*m = TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			*m = TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			*m = TLS_IMPLICIT;
		else
			return "is not none, starttls or implicit";
		return NULL;
	}
	case T_CHOICE:
		return set_choice(s, v, (uint64_t *)(void *)(base + s->offset));
	case T_SIZE:
		if (!parse_size(v, &n))
			return "is not a size (use a byte count or a number with K, M or G, e.g. 10M)";
		break;
	case T_DURATION:
		if (!parse_duration(v, &n))
			return "is not a duration (use seconds or a number with s, m, h or d, e.g. 5m)";
		break;
	case T_MILLIS:
		if (!parse_duration_ms(v, &n))
			return "is not a duration in milliseconds (e.g. 2ms, 0 or 1s)";
		break;
	case T_COUNT:
		if (!parse_u64(v, strlen(v), &n))
			return "is not a whole number";
		break;
	}
	if (n < s->min || n > s->max)
		return "is out of range";
	*(uint64_t *)(void *)(base + s->offset) = n;
	return NULL;
}

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *e = conf_set_value(c, &conf_settings[i], conf_settings[i].def);
		(void)e;   /* defaults are valid by construction; the unit test checks */
	}
}

const char *conf_where(const struct conf *c, const char *section, const char *key, char *out, size_t outsz)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcmp(conf_settings[i].section, section) != 0 || strcmp(conf_settings[i].key, key) != 0)
			continue;
		if (c->setting_line[i])
			snprintf(out, outsz, "%s:%u: [%s] %s", c->path, c->setting_line[i], section, key);
		else
			snprintf(out, outsz, "%s: [%s] %s (default)", c->path, section, key);
		return out;
	}
	snprintf(out, outsz, "%s: [%s] %s", c->path, section, key);
	return out;
}

const char *conf_role_name(enum listener_role r)
{
	return r == ROLE_SUBMISSION ? "submission" : r == ROLE_POP3 ? "pop3" : r == ROLE_HTTP ? "http"
		: r == ROLE_IMAP ? "imap" : r == ROLE_LOCAL ? "local" : r == ROLE_LMTP ? "lmtp" : r == ROLE_CONTROL ? "control"
		: "mx";
}

/* The services of role http (contracts: web/router.c routes name them). */
static const struct { const char *name; unsigned bit; } services[] = {
	{ "autoconfig", CONF_SERVICE_AUTOCONFIG }, { "mta-sts", CONF_SERVICE_MTA_STS },
	{ "health", CONF_SERVICE_HEALTH }, { "metrics", CONF_SERVICE_METRICS },
	{ "account", CONF_SERVICE_ACCOUNT },
};

unsigned conf_service_bit(const char *name)
{
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		if (strcmp(services[i].name, name) == 0)
			return services[i].bit;
	return 0;
}

const char *conf_service_names(unsigned bits, char *out, size_t outsz)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		if (!(bits & services[i].bit))
			continue;
		int n = snprintf(out + o, outsz - o, "%s%s", o ? ", " : "", services[i].name);
		if (n < 0 || (size_t)n >= outsz - o)
			break;
		o += (size_t)n;
	}
	return out;
}

bool conf_listener_serves(const struct conf_listener *l, const char *service)
{
	unsigned bit = conf_service_bit(service);
	return l->role == ROLE_HTTP && bit && (l->services & bit);
}

const char *conf_tls_name(enum tls_mode t)
{
	return t == TLS_STARTTLS ? "starttls" : t == TLS_IMPLICIT ? "implicit" : "none";
}
