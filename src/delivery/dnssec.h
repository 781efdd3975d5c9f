/* dnssec.h - whether outbound delivery validates DNSSEC in this run.
 *
 * `[delivery] dnssec_trust_anchor` (by default Debian's root key) makes the resolver
 * validate every answer.  Behind a resolver that cannot serve DNSSEC every answer is
 * bogus and no mail would leave, so before the first delivery a delivery thread
 * probes the path (dns_dnssec_probe, bounded by DNSSEC_PROBE_TIMEOUT_MS):
 *   validates   -> validation on: a bogus answer defers its message (RFC 7672 §2.1.1)
 *   unavailable -> validation off for this run, DANE unavailable, one log line
 *                  event=dnssec status=unavailable with the reason and the fix
 *   undecided   -> (no answer: no network yet) validation stays on, probed again after
 *                  DNSSEC_REPROBE_S seconds.
 * The gate is shared by the delivery threads; each remakes its resolver when the
 * generation changes. */
#ifndef POSTERN_DELIVERY_DNSSEC_H
#define POSTERN_DELIVERY_DNSSEC_H

#include <stdbool.h>
#include <stddef.h>

#include "dns/dns.h"

#define DNSSEC_PROBE_TIMEOUT_MS 5000   /* per question; the probe asks at most two */
#define DNSSEC_REPROBE_S 300

struct conf;
struct dnssec_gate;

/* The configured anchor file, or NULL: "none", empty, or the default root key when
 * it is not installed (package dns-root-data). */
const char *dnssec_configured_anchor(const struct conf *c);
/* What to change, for the log line and check-config. */
const char *dnssec_unavailable_fix(void);

struct dnssec_gate *dnssec_gate_new(const struct conf *c);
void dnssec_gate_free(struct dnssec_gate **g);
/* The anchor a resolver made now is to use (NULL: no validation) and the gate's
 * generation; probes first when a probe is due (blocking: delivery threads only). */
const char *dnssec_gate_anchor(struct dnssec_gate *g, unsigned *generation);
/* True when a resolver made at `generation` should be remade (a probe is due or
 * its outcome changed what resolvers use). */
bool dnssec_gate_stale(struct dnssec_gate *g, unsigned generation);

#endif
