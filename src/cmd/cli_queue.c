/*
 * sluice queue: look at and prune the spool.
 *
 * list and show read the spool with spool_open_readonly(): no lock, so
 * they work while sluiced runs (a record being written is skipped, not
 * reported as damage).  delete must change the spool, which only its
 * lock holder may do: it asks the running daemon over the control socket
 * ("queue-delete ID" -> "ok" | "error TEXT"), and only when no daemon
 * answers there opens the spool itself with spool_open() (taking the
 * lock, so a daemon starting meanwhile cannot write alongside).
 *
 * A missing spool folder is an empty queue: nothing was ever accepted.
 */
#include "cmd/cli.h"
#include "spool/spool.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CLI_CONTROL_TIMEOUT 30 /* seconds: a delete waits for one group commit */
#define CLI_CONTROL_REPLY_MAX 512

static const char *const cli_rcpt_states[] = {
    [SPOOL_RCPT_PENDING] = "pending",
    [SPOOL_RCPT_DELIVERED] = "delivered",
    [SPOOL_RCPT_FAILED] = "failed",
    [SPOOL_RCPT_DELETED] = "deleted",
};

static const char *cli_rcpt_state(enum spool_rcpt_state s)
{
	if ((unsigned)s < sizeof cli_rcpt_states / sizeof cli_rcpt_states[0] && cli_rcpt_states[s])
		return cli_rcpt_states[s];
	return "unknown";
}

/* A queue id is SPOOL_ID_LEN hex digits; out gets the lower-case form. */
static int cli_queue_id(const char *arg, char out[SPOOL_ID_LEN + 1])
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN && isxdigit((unsigned char)arg[i]); i++)
		out[i] = (char)tolower((unsigned char)arg[i]);
	if (i != SPOOL_ID_LEN || arg[i] != '\0') {
		char safe[64];
		return cli_error("'%s' is not a queue id (%d hex digits)",
		                 cli_safe(arg, safe, sizeof safe), SPOOL_ID_LEN);
	}
	out[SPOOL_ID_LEN] = '\0';
	return 0;
}

/* 1 when the spool folder exists, 0 when it does not, -1 printed. */
static int cli_spool_exists(struct cli *cli)
{
	struct stat st;

	if (cli->cfg.spool_dir == NULL || cli->cfg.spool_dir[0] == '\0') {
		cli_error("no spool_dir in the configuration");
		return -1;
	}
	if (stat(cli->cfg.spool_dir, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	cli_error("spool %s: %s", cli->cfg.spool_dir, strerror(errno));
	return -1;
}

/* Opens the spool read-only; *spool_r NULL when the folder does not
 * exist.  0 or an exit code. */
static int cli_spool_readonly(struct cli *cli, struct spool **spool_r)
{
	char *err = NULL;
	int r;

	*spool_r = NULL;
	if (cli_state_prepare(cli) < 0)
		return CLI_EXIT_ERROR;
	if ((r = cli_spool_exists(cli)) <= 0)
		return r < 0 ? CLI_EXIT_ERROR : 0;
	if (spool_open_readonly(cli->cfg.spool_dir, spool_r, &err) < 0) {
		cli_error("%s", err ? err : "cannot read the spool");
		free(err);
		return CLI_EXIT_ERROR;
	}
	return 0;
}

/* ---- tenant names ------------------------------------------------------------ */

/* The tenants by id, read once, for naming each message's tenant. */
struct cli_tenants {
	struct store_tenant *list;
	size_t n;
};

static int cli_tenant_cmp(const void *a, const void *b)
{
	const struct store_tenant *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int cli_tenants_load(struct cli *cli, struct cli_tenants *ts)
{
	struct store *st = cli_store(cli);
	char *err = NULL;
	int rc;

	ts->list = NULL;
	ts->n = 0;
	if (st == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_tenant_list(st, &ts->list, &ts->n, &err)) != 0)
		return cli_store_error(rc, &err, "listing tenants");
	if (ts->n)
		qsort(ts->list, ts->n, sizeof *ts->list, cli_tenant_cmp);
	return 0;
}

/* The tenant's name, or "#ID" for a tenant no longer in the store. */
static const char *cli_tenant_name(const struct cli_tenants *ts, int64_t id, char *buf, size_t size)
{
	struct store_tenant key = {.id = id}, *t = NULL;

	if (ts->n)
		t = bsearch(&key, ts->list, ts->n, sizeof *ts->list, cli_tenant_cmp);
	if (t)
		return t->name;
	snprintf(buf, size, "#%lld", (long long)id);
	return buf;
}

/* The login that submitted the message: its name, "#ID" for one no
 * longer in the store, NULL for none (a trusted network, a DSN). */
static const char *cli_login_name(struct cli *cli, int64_t tenant_id, int64_t credential_id,
                                  char *buf, size_t size)
{
	struct store *st = cli_store(cli);
	struct store_credential c;
	char *err = NULL;

	if (credential_id == 0)
		return NULL;
	snprintf(buf, size, "#%lld", (long long)credential_id);
	if (st != NULL && store_credential_get_id(st, credential_id, &c, &err) == 0 &&
	    c.tenant_id == tenant_id)
		util_strlcpy(buf, c.username, size);
	free(err);
	return buf;
}

/* ---- list ------------------------------------------------------------------------- */

struct cli_queue_list {
	struct spool *spool;
	struct cli_tenants *tenants;
	int json;
	json_t *array;
	size_t count;
	int failed;
};

/* One message of the index.  Its size is not in the index (spool.h gives
 * no length without the data), so each message is read: a list of a long
 * queue costs a read of every message. */
static int cli_queue_list_one(void *ctx, const struct spool_message *m)
{
	struct cli_queue_list *ql = ctx;
	struct spool_message full;
	char when[CLI_TIME_MAX], tbuf[32];
	const char *tenant = cli_tenant_name(ql->tenants, m->tenant_id, tbuf, sizeof tbuf);
	int held = (m->flags & SPOOL_MSG_HELD) != 0;
	size_t pending = 0;
	int64_t size = -1;
	int r;

	r = spool_load(ql->spool, m->id, &full);
	if (r == 1)
		return 0; /* finished or deleted since the snapshot */
	if (r == 0) {
		size = (int64_t)full.len;
		spool_message_free(&full);
	}
	for (size_t i = 0; i < m->nrcpts; i++)
		pending += m->rcpts[i].state == SPOOL_RCPT_PENDING;
	cli_time_iso(m->received, when);
	ql->count++;
	if (ql->json) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:b}", "id", m->id, "received", when,
		    "tenant", tenant, "tenant_id", (json_int_t)m->tenant_id, "sender",
		    cli_json_string(m->sender), "recipients", (json_int_t)m->nrcpts, "pending",
		    (json_int_t)pending, "size", (json_int_t)size, "held", held);
		if (json_array_append_new(ql->array, o) < 0) {
			ql->failed = 1;
			return 1;
		}
		return 0;
	}
	if (ql->count == 1)
		printf("%-16s %-20s %-12s %10s %5s %-4s %s\n", "ID", "RECEIVED", "TENANT", "SIZE",
		       "RCPTS", "HELD", "SENDER");
	printf("%-16s %-20s %-12s %10lld %5zu %-4s <%s>\n", m->id, when, tenant, (long long)size,
	       m->nrcpts, held ? "yes" : "no", m->sender);
	return 0;
}

int cli_queue_list(struct cli *cli)
{
	struct cli_queue_list ql;
	struct cli_tenants ts;
	int rc;

	memset(&ql, 0, sizeof ql);
	if ((rc = cli_tenants_load(cli, &ts)) != 0)
		return rc;
	if ((rc = cli_spool_readonly(cli, &ql.spool)) != 0)
		goto done;
	ql.tenants = &ts;
	ql.json = (cli->flags & CLI_FLAG_JSON) != 0;
	if (ql.json && (ql.array = json_array()) == NULL) {
		rc = cli_error("out of memory");
		goto done;
	}
	if (ql.spool)
		spool_foreach(ql.spool, cli_queue_list_one, &ql);
	if (ql.failed) {
		json_decref(ql.array);
		rc = cli_error("out of memory");
	} else if (ql.json) {
		rc = cli_json_print(ql.array);
	} else if (ql.count == 0) {
		printf("queue is empty\n");
	} else {
		printf("%zu message%s\n", ql.count, ql.count == 1 ? "" : "s");
	}
done:
	spool_close(&ql.spool);
	free(ts.list);
	return rc;
}

/* ---- show ------------------------------------------------------------------------- */

/* The header section: up to and including the CRLF before the empty line. */
static size_t cli_header_len(const struct spool_message *m)
{
	for (size_t i = 0; i + 3 < m->len; i++)
		if (memcmp(m->data + i, "\r\n\r\n", 4) == 0)
			return i + 2;
	return m->len;
}

/* CRLF to LF, for a terminal or a JSON string. */
static char *cli_lf_text(const char *data, size_t len)
{
	char *out = malloc(len + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
			continue;
		*p++ = data[i] == '\0' ? '?' : data[i];
	}
	*p = '\0';
	return out;
}

static json_t *cli_queue_show_json(const struct spool_message *m, const char *tenant,
                                   const char *login, const char *headers)
{
	char when[CLI_TIME_MAX], next[CLI_TIME_MAX];
	json_t *o, *rcpts = json_array();

	cli_time_iso(m->received, when);
	o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:I, s:b, s:b, s:b, s:o}", "id", m->id, "received",
	              when, "tenant", tenant, "tenant_id", (json_int_t)m->tenant_id, "sender",
	              cli_json_string(m->sender), "size", (json_int_t)m->len, "held",
	              (m->flags & SPOOL_MSG_HELD) != 0, "8bitmime",
	              (m->flags & SPOOL_MSG_8BIT) != 0, "smtputf8",
	              (m->flags & SPOOL_MSG_SMTPUTF8) != 0, "headers", cli_json_string(headers));
	if (o == NULL || rcpts == NULL ||
	    json_object_set_new(o, "login", login ? json_string(login) : json_null()) < 0 ||
	    json_object_set_new(o, "recipients", rcpts) < 0) {
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];
		json_t *ro;

		cli_time_iso(r->next_attempt, next);
		ro = json_pack("{s:o, s:s, s:I, s:o, s:o}", "address", cli_json_string(r->addr),
		               "state", cli_rcpt_state(r->state), "attempts",
		               (json_int_t)r->attempts, "next_attempt",
		               r->next_attempt ? json_string(next) : json_null(), "last_reply",
		               cli_json_string(r->last_reply));
		if (json_array_append_new(rcpts, ro) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static void cli_queue_show_text(const struct spool_message *m, const char *tenant,
                                const char *login, const char *headers)
{
	char when[CLI_TIME_MAX];

	cli_time_iso(m->received, when);
	printf("id:          %s\n"
	       "received:    %s\n"
	       "tenant:      %s\n"
	       "login:       %s\n"
	       "sender:      <%s>\n"
	       "size:        %zu\n"
	       "held:        %s\n",
	       m->id, when, tenant, login ? login : "none", m->sender, m->len,
	       (m->flags & SPOOL_MSG_HELD) ? "yes" : "no");
	printf("recipients:  %zu\n", m->nrcpts);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt *r = &m->rcpts[i];

		if (r->next_attempt)
			cli_time_iso(r->next_attempt, when);
		printf("  <%s> state=%s attempts=%" PRIu32 " next_attempt=%s", r->addr,
		       cli_rcpt_state(r->state), r->attempts, r->next_attempt ? when : "now");
		if (r->last_reply)
			printf(" last_reply=\"%s\"", r->last_reply);
		printf("\n");
	}
	printf("headers:\n%s", headers);
}

int cli_queue_show(struct cli *cli)
{
	char id[SPOOL_ID_LEN + 1], tbuf[32], lbuf[STORE_NAME_MAX + 1], *headers = NULL;
	const char *login;
	struct spool *spool = NULL;
	struct spool_message m;
	struct cli_tenants ts = {NULL, 0};
	int rc, r;

	memset(&m, 0, sizeof m);
	if ((rc = cli_queue_id(cli->args[0], id)) != 0)
		return rc;
	if ((rc = cli_spool_readonly(cli, &spool)) != 0)
		return rc;
	r = spool ? spool_load(spool, id, &m) : 1;
	if (r != 0) {
		rc = r == 1 ? cli_error("no message %s in the queue", id)
		            : cli_error("reading message %s: %s", id, strerror(errno));
		goto done;
	}
	if (cli->flags & CLI_FLAG_RAW) {
		if (fwrite(m.data, 1, m.len, stdout) != m.len)
			rc = cli_error("writing the message: %s", strerror(errno));
		goto done;
	}
	if ((rc = cli_tenants_load(cli, &ts)) != 0)
		goto done;
	if ((headers = cli_lf_text(m.data, cli_header_len(&m))) == NULL) {
		rc = cli_error("out of memory");
		goto done;
	}
	login = cli_login_name(cli, m.tenant_id, m.credential_id, lbuf, sizeof lbuf);
	if (cli->flags & CLI_FLAG_JSON)
		rc = cli_json_print(cli_queue_show_json(
		    &m, cli_tenant_name(&ts, m.tenant_id, tbuf, sizeof tbuf), login, headers));
	else
		cli_queue_show_text(&m, cli_tenant_name(&ts, m.tenant_id, tbuf, sizeof tbuf), login,
		                    headers);
done:
	free(headers);
	free(ts.list);
	spool_message_free(&m);
	spool_close(&spool);
	return rc;
}

/* ---- delete ----------------------------------------------------------------------- */

enum cli_control {
	CLI_CONTROL_DONE,  /* the daemon answered; *rc_r is the exit code */
	CLI_CONTROL_ABSENT /* nobody listens: reason in why */
};

/* Ask sluiced to do op ("delete", "retry", "hold", "release", "bounce")
 * to id.  why gets the reason when it is absent. */
static enum cli_control cli_control_op(struct cli *cli, const char *op, const char *id, int *rc_r,
                                       char *why, size_t whysize)
{
	const char *path = cli->cfg.control_socket;
	struct timeval tv = {.tv_sec = CLI_CONTROL_TIMEOUT, .tv_usec = 0};
	char req[64], reply[CLI_CONTROL_REPLY_MAX], safe[CLI_CONTROL_REPLY_MAX], *nl;
	struct sockaddr_un sun;
	size_t len = 0;
	int fd, n;

	if (path == NULL || path[0] == '\0') {
		util_strlcpy(why, "no control_socket configured", whysize);
		return CLI_CONTROL_ABSENT;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, path, sizeof sun.sun_path) >= sizeof sun.sun_path) {
		snprintf(why, whysize, "control socket %s: path too long", path);
		return CLI_CONTROL_ABSENT;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(why, whysize, "control socket: %s", strerror(errno));
		return CLI_CONTROL_ABSENT;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		snprintf(why, whysize, "control socket %s: %s", path, strerror(errno));
		close(fd);
		return CLI_CONTROL_ABSENT;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	n = snprintf(req, sizeof req, "queue-%s %s\n", op, id);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		*rc_r = cli_error("sending to sluiced on %s: %s", path, strerror(errno));
		close(fd);
		return CLI_CONTROL_DONE;
	}
	while (len < sizeof reply - 1) {
		ssize_t got = recv(fd, reply + len, sizeof reply - 1 - len, 0);
		if (got <= 0)
			break;
		len += (size_t)got;
		if (memchr(reply, '\n', len))
			break;
	}
	close(fd);
	reply[len] = '\0';
	if ((nl = strchr(reply, '\n')) == NULL) {
		*rc_r = cli_error("no reply from sluiced on %s (%s of message %s may or may not "
		                  "have happened: check with sluice queue show %s)",
		                  path, op, id, id);
		return CLI_CONTROL_DONE;
	}
	*nl = '\0';
	if (strcmp(reply, "ok") == 0 || strncmp(reply, "ok ", 3) == 0) {
		static const char *const past[][2] = {{"delete", "deleted"},
		                                      {"retry", "retry scheduled"},
		                                      {"hold", "held"},
		                                      {"release", "released"},
		                                      {"bounce", "bounced"}};
		const char *what = op;
		for (size_t i = 0; i < sizeof past / sizeof past[0]; i++)
			if (strcmp(past[i][0], op) == 0)
				what = past[i][1];
		printf("message %s: %s\n", id,
		       reply[2] ? cli_safe(reply + 3, safe, sizeof safe) : what);
		*rc_r = CLI_EXIT_OK;
	} else if (strncmp(reply, "error ", 6) == 0) {
		*rc_r = cli_error("%s", cli_safe(reply + 6, safe, sizeof safe));
	} else {
		*rc_r = cli_error("unexpected reply from sluiced: %s",
		                  cli_safe(reply, safe, sizeof safe));
	}
	return CLI_CONTROL_DONE;
}

/* No daemon: take the spool's lock and change it directly.  bounce needs
 * the daemon (it queues a DSN); the others are state records. */
static int cli_spool_op(struct cli *cli, const char *op, const char *id, const char *why)
{
	struct spool_config sc = {.dir = cli->cfg.spool_dir, .batch_max = 1};
	struct spool *spool = NULL;
	struct spool_message m;
	char *err = NULL;
	const char *done = NULL;
	int rc, r;

	if (strcmp(op, "bounce") == 0)
		return cli_error("cannot bounce %s: sluiced does not answer (%s); bounce needs a "
		                 "running sluiced",
		                 id, why);
	if ((r = cli_spool_exists(cli)) < 0)
		return CLI_EXIT_ERROR;
	if (r == 0)
		return cli_error("no message %s in the queue", id);
	if (spool_open(&sc, &spool, &err) < 0) {
		rc = cli_error("cannot %s %s: sluiced does not answer (%s), and %s", op, id, why,
		               err ? err : "the spool does not open");
		free(err);
		return rc;
	}
	r = spool_load(spool, id, &m);
	if (r == 1) {
		rc = cli_error("no message %s in the queue", id);
		goto out;
	}
	if (r < 0) {
		rc = cli_error("reading %s: %s", id, strerror(errno));
		goto out;
	}
	if (strcmp(op, "delete") == 0) {
		r = spool_delete(spool, id);
		done = "deleted";
	} else if (strcmp(op, "hold") == 0 || strcmp(op, "release") == 0) {
		r = spool_set_held(spool, id, op[0] == 'h');
		done = op[0] == 'h' ? "held" : "released";
	} else { /* retry: every pending recipient due now */
		r = 0;
		for (size_t i = 0; i < m.nrcpts && r == 0; i++) {
			struct spool_rcpt st = m.rcpts[i];
			if (st.state != SPOOL_RCPT_PENDING || st.next_attempt == 0)
				continue;
			st.next_attempt = 0;
			r = spool_set_rcpt_state(spool, id, i, &st);
		}
		done = "retry at the next start of sluiced";
	}
	if (r < 0) {
		rc = cli_error("%s %s: %s", op, id, strerror(errno));
	} else {
		printf("message %s: %s\n", id, done);
		rc = CLI_EXIT_OK;
	}
out:
	if (r != 1)
		spool_message_free(&m);
	spool_close(&spool);
	return rc;
}

static int cli_queue_op(struct cli *cli, const char *op)
{
	char id[SPOOL_ID_LEN + 1], why[512];
	int rc;

	if ((rc = cli_queue_id(cli->args[0], id)) != 0)
		return rc;
	if (cli_state_prepare(cli) < 0)
		return CLI_EXIT_ERROR;
	if (cli_control_op(cli, op, id, &rc, why, sizeof why) == CLI_CONTROL_DONE)
		return rc;
	return cli_spool_op(cli, op, id, why);
}

int cli_queue_delete(struct cli *cli)
{
	return cli_queue_op(cli, "delete");
}

int cli_queue_retry(struct cli *cli)
{
	return cli_queue_op(cli, "retry");
}

int cli_queue_hold(struct cli *cli)
{
	return cli_queue_op(cli, "hold");
}

int cli_queue_release(struct cli *cli)
{
	return cli_queue_op(cli, "release");
}

int cli_queue_bounce(struct cli *cli)
{
	return cli_queue_op(cli, "bounce");
}
