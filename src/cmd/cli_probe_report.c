/*
 * sluice probe: the verdict in plain language and the output, text or
 * JSON, of the ports cli_probe.c probed (see there for what a probe does).
 */
#include "cmd/cli_probe.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const probe_state_names[] = {
    [PROBE_CONNECTED] = "connected",     [PROBE_REFUSED] = "refused", [PROBE_TIMEOUT] = "timeout",
    [PROBE_UNREACHABLE] = "unreachable", [PROBE_BLOCKED] = "blocked", [PROBE_ERROR] = "error",
};

/* ---- judging ----------------------------------------------------------------------- */

/* The EHLO answer that counts: after STARTTLS when it was done. */
static const struct probe_ehlo *probe_final_ehlo(const struct probe_port *p)
{
	return p->starttls_done ? &p->ehlo_tls : &p->ehlo;
}

/* SMTP went through: greeting, EHLO (again after STARTTLS), nothing failed. */
static int probe_smtp_ok(const struct probe_port *p)
{
	return p->state == PROBE_CONNECTED && p->greeted && p->error[0] == '\0' &&
	       probe_final_ehlo(p)->done;
}

/* A customer can submit here: SMTP, TLS, AUTH after TLS.  Port 25 is for
 * relaying and delivery, never the submission advice. */
static int probe_submission_ok(const struct probe_port *p)
{
	char auth[PROBE_EXT_LEN];

	if (p->port == 25 || !probe_smtp_ok(p) || !p->tls)
		return 0;
	cli_probe_auth(probe_final_ehlo(p), auth, sizeof auth);
	return auth[0] != '\0';
}

/* Which working submission port to advise: 587, 465, 2525, then the
 * order given. */
static size_t probe_rank(const struct probe_port *p, size_t index)
{
	switch (p->port) {
	case 587:
		return 0;
	case 465:
		return 1;
	case 2525:
		return 2;
	default:
		return 3 + index;
	}
}

static const char *probe_tls_how(const struct probe_port *p)
{
	return p->implicit_tls ? "implicit TLS" : p->starttls_done ? "STARTTLS" : "no TLS";
}

static void probe_say(struct probe_verdict *v, const char *fmt, ...) UTIL_PRINTF(2, 3);

static void probe_say(struct probe_verdict *v, const char *fmt, ...)
{
	va_list ap;

	if (v->n == sizeof v->lines / sizeof v->lines[0])
		return;
	va_start(ap, fmt);
	vsnprintf(v->lines[v->n++], sizeof v->lines[0], fmt, ap);
	va_end(ap);
}

/* One line on what a port did. */
static void probe_judge_port(const struct probe_run *run, const struct probe_port *p,
                             struct probe_verdict *v)
{
	double secs = (double)run->timeout_ms / 1000.0;
	char auth[PROBE_EXT_LEN];

	switch (p->state) {
	case PROBE_REFUSED:
		probe_say(v,
		          "port %u: %s (connection refused: nothing listens on %s:%u, or a "
		          "firewall rejects it%s)",
		          p->port, p->port == 25 ? "refused" : "closed", run->host, p->port,
		          p->port == 25 ? ", as a port-25 block does" : "");
		return;
	case PROBE_TIMEOUT:
		probe_say(v, "port %u: blocked (timed out after %.1f s: filtered by a firewall%s)",
		          p->port, secs,
		          p->port == 25 ? ", likely your network's port-25 block" : " on the way");
		return;
	case PROBE_UNREACHABLE:
		probe_say(v, "port %u: unreachable (%s: check your network and the address)",
		          p->port, p->connect_error);
		return;
	case PROBE_BLOCKED:
		probe_say(v, "port %u: blocked by this machine's own firewall (%s)", p->port,
		          p->connect_error);
		return;
	case PROBE_ERROR:
		probe_say(v, "port %u: cannot connect (%s)", p->port, p->connect_error);
		return;
	case PROBE_CONNECTED:
		break;
	}
	if (!probe_smtp_ok(p)) {
		probe_say(v, "port %u: connects, but %s", p->port, p->error);
		return;
	}
	cli_probe_auth(probe_final_ehlo(p), auth, sizeof auth);
	if (probe_submission_ok(p))
		probe_say(v, "port %u: works (%s, AUTH %s%s)", p->port, probe_tls_how(p), auth,
		          p->starttls_done ? " after TLS" : "");
	else if (!p->tls)
		probe_say(v, "port %u: SMTP works, without TLS%s", p->port,
		          auth[0] ? " (AUTH offered in clear text)"
		                  : ", no AUTH: not for submission");
	else
		probe_say(v,
		          "port %u: SMTP works (%s), no AUTH: a relay or MX port, not for "
		          "submission",
		          p->port, probe_tls_how(p));
}

void cli_probe_judge(const struct probe_run *run, struct probe_verdict *v)
{
	const struct probe_port *best = NULL;
	size_t best_rank = 0, connected = 0;
	char auth[PROBE_EXT_LEN];

	memset(v, 0, sizeof *v);
	for (size_t i = 0; i < run->nports; i++) {
		const struct probe_port *p = &run->ports[i];
		probe_judge_port(run, p, v);
		connected += p->state == PROBE_CONNECTED;
		if (probe_submission_ok(p) && (best == NULL || probe_rank(p, i) < best_rank)) {
			best = p;
			best_rank = probe_rank(p, i);
		}
	}
	if (connected == 0) {
		probe_say(v, "nothing reaches %s: check the name and your network", run->host);
		return;
	}
	if (best == NULL) {
		probe_say(v, "no port here takes submission (SMTP with TLS and AUTH): see above");
		return;
	}
	v->ok = 1;
	cli_probe_auth(probe_final_ehlo(best), auth, sizeof auth);
	if (best->implicit_tls)
		probe_say(v, "submit on %u with implicit TLS (AUTH %s)", best->port, auth);
	else
		probe_say(v, "submit on %u with STARTTLS (AUTH %s after TLS)", best->port, auth);
	for (size_t i = 0; i < run->nports; i++) {
		const struct probe_port *p = &run->ports[i];
		if (p != best && probe_submission_ok(p))
			probe_say(v, "%u (%s) works too", p->port, probe_tls_how(p));
	}
	if (!best->verified)
		probe_say(v,
		          "note: the certificate on port %u does not verify for %s (%s): a mail "
		          "client that checks certificates refuses it",
		          best->port, run->host, best->verify_result);
	for (size_t i = 0; i < run->nports; i++) {
		const struct probe_port *p = &run->ports[i];
		if (!p->implicit_tls && cli_probe_ehlo_find(&p->ehlo, "AUTH") != NULL)
			probe_say(v,
			          "note: port %u offers AUTH before TLS: a password could cross "
			          "the network in clear text",
			          p->port);
	}
}

/* ---- output ---------------------------------------------------------------------------- */

static json_t *probe_json_ehlo(const struct probe_ehlo *e)
{
	json_t *a;

	if (!e->done)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < e->n; i++)
		json_array_append_new(a, cli_json_string(e->ext[i]));
	return a;
}

/* The mechanisms as an array ([] when none, null before EHLO). */
static json_t *probe_json_auth(const struct probe_ehlo *e)
{
	char auth[PROBE_EXT_LEN], *save = NULL;
	json_t *a;

	if (!e->done)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	cli_probe_auth(e, auth, sizeof auth);
	for (char *t = strtok_r(auth, " ", &save); t; t = strtok_r(NULL, " ", &save))
		json_array_append_new(a, cli_json_string(t));
	return a;
}

static json_t *probe_json_tls(const struct probe_port *p)
{
	json_t *t, *sans;

	if (!p->tls)
		return json_null();
	t = json_pack("{s:o, s:o, s:b, s:o}", "version", cli_json_string(p->tls_version), "cipher",
	              cli_json_string(p->tls_cipher), "verified", p->verified, "verify_result",
	              cli_json_string(p->verify_result));
	if (t == NULL || !p->have_cert)
		return t;
	if ((sans = json_array()) != NULL)
		for (size_t i = 0; i < p->cert.nsans; i++)
			json_array_append_new(sans, cli_json_string(p->cert.sans[i]));
	json_object_set_new(t, "subject", cli_json_string(p->cert.subject));
	json_object_set_new(t, "issuer", cli_json_string(p->cert.issuer));
	json_object_set_new(t, "not_after", cli_json_string(p->cert.not_after));
	json_object_set_new(t, "san", sans ? sans : json_null());
	return t;
}

int cli_probe_print_json(const struct probe_run *run, const struct probe_verdict *v)
{
	json_t *root = json_object(), *ports = json_array(), *lines = json_array();

	if (root == NULL || ports == NULL || lines == NULL) {
		json_decref(root);
		json_decref(ports);
		json_decref(lines);
		return cli_error("out of memory");
	}
	for (size_t i = 0; i < run->nports; i++) {
		const struct probe_port *p = &run->ports[i];
		json_t *o = json_object();

		if (o == NULL)
			continue;
		json_object_set_new(o, "port", json_integer(p->port));
		json_object_set_new(o, "implicit_tls", json_boolean(p->implicit_tls));
		json_object_set_new(o, "address",
		                    p->addr[0] ? cli_json_string(p->addr) : json_null());
		json_object_set_new(o, "state", json_string(probe_state_names[p->state]));
		json_object_set_new(o, "smtp", json_boolean(probe_smtp_ok(p)));
		json_object_set_new(o, "submission", json_boolean(probe_submission_ok(p)));
		json_object_set_new(o, "banner",
		                    p->banner[0] ? cli_json_string(p->banner) : json_null());
		json_object_set_new(o, "extensions", probe_json_ehlo(&p->ehlo));
		json_object_set_new(o, "starttls",
		                    json_pack("{s:b, s:b}", "offered", p->starttls_offered, "done",
		                              p->starttls_done));
		json_object_set_new(o, "extensions_after_tls", probe_json_ehlo(&p->ehlo_tls));
		json_object_set_new(o, "tls", probe_json_tls(p));
		json_object_set_new(o, "auth", probe_json_auth(probe_final_ehlo(p)));
		json_object_set_new(o, "auth_before_tls",
		                    p->implicit_tls ? json_null() : probe_json_auth(&p->ehlo));
		json_object_set_new(o, "error",
		                    p->state != PROBE_CONNECTED ? cli_json_string(p->connect_error)
		                    : p->error[0]               ? cli_json_string(p->error)
		                                                : json_null());
		json_object_set_new(o, "elapsed_ms", json_integer(p->elapsed_ms));
		json_array_append_new(ports, o);
	}
	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(lines, cli_json_string(v->lines[i]));
	json_object_set_new(root, "host", cli_json_string(run->host));
	json_object_set_new(root, "timeout_ms", json_integer(run->timeout_ms));
	json_object_set_new(root, "ports", ports);
	json_object_set_new(root, "verdict", lines);
	json_object_set_new(root, "ok", json_boolean(v->ok));
	return cli_json_print(root);
}

static void probe_print_ehlo(const char *label, const struct probe_ehlo *e)
{
	if (!e->done)
		return;
	printf("  %-11s", label);
	for (size_t i = 0; i < e->n; i++)
		printf("%s%s", i ? ", " : "", e->ext[i]);
	printf("%s\n", e->n ? "" : "(no extensions)");
}

void cli_probe_print_text(const struct probe_run *run, const struct probe_verdict *v)
{
	char auth[PROBE_EXT_LEN];

	printf("probe %s (timeout %.1f s a step)\n", run->host, (double)run->timeout_ms / 1000.0);
	for (size_t i = 0; i < run->nports; i++) {
		const struct probe_port *p = &run->ports[i];

		printf("\nport %u%s: %s", p->port, p->implicit_tls ? " (implicit TLS)" : "",
		       probe_state_names[p->state]);
		if (p->addr[0])
			printf(" %s %s", p->state == PROBE_CONNECTED ? "to" : "at", p->addr);
		printf(" (%lld ms)\n", (long long)p->elapsed_ms);
		if (p->state != PROBE_CONNECTED) {
			printf("  %-11s%s\n", "error", p->connect_error);
			continue;
		}
		if (p->banner[0])
			printf("  %-11s%s\n", "banner", p->banner);
		probe_print_ehlo("ehlo", &p->ehlo);
		if (p->starttls_offered)
			printf("  %-11s%s\n", "starttls", p->starttls_done ? "done" : "failed");
		if (p->tls) {
			printf("  %-11s%s, %s\n", "tls", p->tls_version, p->tls_cipher);
			printf("  %-11s%s (%s)\n", "verified", p->verified ? "yes" : "no",
			       p->verify_result);
		}
		if (p->have_cert) {
			printf("  %-11s%s\n", "subject", p->cert.subject);
			for (size_t j = 0; j < p->cert.nsans; j++)
				printf("  %-11s%s\n", j ? "" : "san", p->cert.sans[j]);
			printf("  %-11s%s\n", "issuer", p->cert.issuer);
			printf("  %-11s%s\n", "not after", p->cert.not_after);
		}
		probe_print_ehlo("ehlo (tls)", &p->ehlo_tls);
		if (probe_final_ehlo(p)->done) {
			cli_probe_auth(probe_final_ehlo(p), auth, sizeof auth);
			printf("  %-11s%s%s\n", "auth", auth[0] ? auth : "none offered",
			       auth[0] && p->starttls_done ? " (after TLS)" : "");
		}
		if (p->error[0])
			printf("  %-11s%s\n", "error", p->error);
	}
	printf("\nverdict:\n");
	for (size_t i = 0; i < v->n; i++)
		printf("  %s\n", v->lines[i]);
}
