/*
 * libFuzzer target for the SMTP server session.
 *
 * Input: byte 0 chooses the session (implicit TLS, AUTH required, how
 * the input ends), byte 1 the read size (or whole reads), the rest is
 * what the client sends.  The harness plays the I/O layer: it feeds no
 * more than smtp_server_wants_input(), steps, answers each event with a
 * decision picked from the input, completes STARTTLS, and drains output.
 *
 * Oracles: the session never deadlocks (wants no input while it needs
 * some), every reply line is "ddd" SP/- text CRLF within 512 octets,
 * an accepted message has no bare CR/LF, NUL or overlong line, and
 * memory stays within its bounds.  Leaks are caught by ASan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

#define FUZZ_MAX_MESSAGE 2048
/* struct + full input buffer + kept output + message + transaction */
#define FUZZ_MEMORY_MAX (SMTP_INPUT_MAX + FUZZ_MAX_MESSAGE + 16384)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_output(struct smtp_server *s)
{
	size_t len, i = 0;
	const char *out = smtp_server_output(s, &len);

	while (i < len) {
		const char *line = out + i;
		const char *crlf = memchr(line, '\n', len - i);
		size_t n;

		if (crlf == NULL || crlf == line || crlf[-1] != '\r')
			__builtin_trap();
		n = (size_t)(crlf - line) + 1;
		if (n > SMTP_REPLY_LINE_MAX || n < 6)
			__builtin_trap();
		for (int k = 0; k < 3; k++)
			if (line[k] < '0' || line[k] > '9')
				__builtin_trap();
		if (line[3] != ' ' && line[3] != '-')
			__builtin_trap();
		if (memchr(line, '\r', n - 2) || memchr(line, '\0', n))
			__builtin_trap();
		i += n;
	}
	smtp_server_output_consumed(s, len);
}

/* An accepted message is clean: CRLF line ends only, no NUL, lines within
 * 998 octets, and it ends with CRLF unless empty. */
static void fuzz_check_message(const char *m, size_t len)
{
	size_t line = 0;

	if (len > 0 && (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n'))
		__builtin_trap();
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\0')
			__builtin_trap();
		if (m[i] == '\r') {
			if (i + 1 >= len || m[i + 1] != '\n')
				__builtin_trap();
			i++;
			line = 0;
			continue;
		}
		if (m[i] == '\n' || ++line > 998)
			__builtin_trap();
	}
}

static void fuzz_decide(struct smtp_server *s, enum smtp_server_event_type t, uint8_t choice,
                        const struct smtp_server_event *ev)
{
	static const int codes[] = {250, 250, 250, 250, 550, 452, 554, 421};
	int code = codes[choice & 7];

	if (t == SMTP_SERVER_AUTH) {
		if (ev->u.auth.username == NULL || ev->u.auth.password == NULL ||
		    ev->u.auth.authzid == NULL)
			__builtin_trap();
		code = code == 250 ? 235 : code == 550 ? 535 : code;
	}
	if (t == SMTP_SERVER_DATA) {
		if (ev->u.data.len > FUZZ_MAX_MESSAGE)
			__builtin_trap();
		fuzz_check_message(ev->u.data.data, ev->u.data.len);
		if (choice & 0x10) {
			size_t len;
			char *m = smtp_server_take_message(s, &len);

			if (m == NULL || len != ev->u.data.len)
				__builtin_trap();
			free(m);
		}
	}
	if (choice & 0x20)
		smtp_server_decide(s, code, NULL, "decided %u", choice);
	else
		smtp_server_decide(s, code, "2.0.0", "Ok");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_config cfg = {
	    .hostname = "mx.example",
	    .max_message_size = FUZZ_MAX_MESSAGE,
	    .max_recipients = 4,
	    .tls_available = 1,
	    .auth_offered = 1,
	};
	struct smtp_server *s;
	size_t pos = 2, chunk, ndecisions = 0;
	uint8_t mode;

	if (size < 2)
		return 0;
	mode = data[0];
	cfg.tls_active = mode & 1;
	cfg.auth_required = (mode >> 1) & 1;
	cfg.max_errors = 5 + ((mode >> 4) & 7);
	chunk = data[1] & 0x80 ? (size_t)(data[1] & 0x7f) + 1 : size;
	s = smtp_server_new(&cfg);
	if (s == NULL)
		return 0;
	smtp_server_greet(s);

	for (;;) {
		struct smtp_server_event ev;
		enum smtp_server_event_type t = smtp_server_step(s, &ev);

		fuzz_check_output(s);
		if (smtp_server_memory(s) > FUZZ_MEMORY_MAX)
			__builtin_trap();
		if (t == SMTP_SERVER_CLOSE) {
			if (smtp_server_wants_input(s) != 0)
				__builtin_trap();
			break;
		}
		if (t == SMTP_SERVER_STARTTLS) {
			smtp_server_tls_started(s);
			continue;
		}
		if (t != SMTP_SERVER_NEED_INPUT) {
			uint8_t choice = data[(pos + ndecisions * 7) % size] ^ (uint8_t)ndecisions;

			if (smtp_server_wants_input(s) != 0)
				__builtin_trap();
			ndecisions++;
			fuzz_decide(s, t, choice, &ev);
			continue;
		}
		if (pos >= size) {
			if (mode & 4)
				smtp_server_timeout(s);
			else if (mode & 8)
				smtp_server_shutdown(s);
			else
				smtp_server_eof(s);
			continue;
		}
		{
			size_t want = smtp_server_wants_input(s), n = size - pos;

			if (want == 0 || want > SMTP_INPUT_MAX)
				__builtin_trap(); /* needs input but takes none */
			if (n > want)
				n = want;
			if (n > chunk)
				n = chunk;
			smtp_server_feed(s, (const char *)data + pos, n);
			pos += n;
		}
	}
	fuzz_check_output(s);
	smtp_server_free(&s);
	if (s != NULL)
		__builtin_trap();
	return 0;
}
