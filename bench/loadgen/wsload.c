/*
 * wsload: a small epoll load generator for mgpy's benchmarks (WebSocket, raw TCP, HTTP GET).
 *
 * Strategy: one thread, one epoll set, non-blocking sockets, level-triggered.  Every
 * connection runs the same little state machine: CONNECTING -> (HANDSHAKE) -> OPEN.  The
 * outgoing message is built once (a masked client frame with one random mask key, RFC 6455
 * 5.3) and re-sent from the same buffer, so the generator spends its CPU on syscalls, not on
 * masking; the servers still have to unmask every byte.  Incoming data is parsed in place:
 * WebSocket frames (7-bit, 16-bit and 64-bit lengths, fragmented messages, pings answered
 * with pongs) or, for `get`, HTTP/1.1 response heads followed by Content-Length body bytes
 * that are counted, not stored.  Connections are opened gradually (at most MAX_PENDING
 * connects/handshakes in flight) so listen backlogs never overflow.
 *
 * permessage-deflate (RFC 7692), with --deflate on echo, push and hold: the handshake offers
 * "permessage-deflate; client_max_window_bits" as Chromium does, and a 101 without the
 * extension fails the connection.  The echo message (then a compressible JSON text of SIZE
 * bytes) is compressed once, with the window the server allowed and no context takeover
 * (each message on its own, RFC 7692 7.2.1), masked once and re-sent.  Every compressed
 * message received is inflated (RFC 7692 7.2.2) and checked like an uncompressed one:
 * with a shared inflater reset per message when the server agreed to
 * server_no_context_takeover, else with the connection's own, kept across messages.
 *
 * Modes (results are one JSON object per line on stdout; progress goes to stderr):
 *   wsload echo HOST PORT PATH CONNS SIZE SECONDS [text|binary] [--deflate]
 *   wsload push HOST PORT PATH CONNS [PUSHES] [--wait] [--deflate]
 *   wsload hold HOST PORT PATH CONNS           (WebSocket connections, held until stdin says quit)
 *   wsload tcp HOST PORT CONNS SIZE SECONDS    (raw TCP echo)
 *   wsload tcphold HOST PORT CONNS             (raw TCP connections, held until stdin says quit)
 *   wsload get HOST PORT PATH CONNS SECONDS    (HTTP/1.1 keep-alive GET, body bytes per second)
 * `push --wait`, `hold` and `tcphold` print {"event":"ready",...} once every connection is
 * open (and, for tcphold, has echoed one byte), then wait for a line on stdin: "quit" or EOF
 * exits; for push, each "go [SIZE [COUNT]]" runs one batch of COUNT (default PUSHES) pushes
 * and prints its result.  A push is asked for with the text "push" (the server sends
 * repr(monotonic time)) or, with SIZE, "push SIZE" (the server sends a JSON text of exactly
 * SIZE bytes whose "t" member is the time); every connection must get it exactly once.  Every result carries cpu_s and wall_s so the caller can check
 * that the generator was not the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_PENDING 128
#define MAX_EVENTS 512
#define CONNECT_TIMEOUT_S 120.0
#define PUSH_TIMEOUT_S 30.0

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };
enum { M_ECHO, M_PUSH, M_HOLD, M_TCP, M_TCPHOLD, M_GET };

typedef struct {
    int fd;
    int state;
    int want_out;          /* EPOLLOUT registered */
    unsigned char *rbuf;
    size_t rlen, rcap;
    const unsigned char *out; /* pending output, not owned unless own_out */
    size_t outlen, outoff;
    unsigned char *own_out;
    char accept[32];       /* expected Sec-WebSocket-Accept */
    size_t msg_got;        /* payload bytes of the current message (ws) / echo bytes (tcp) */
    int in_msg;            /* a fragmented data message is in progress */
    int got_push;
    int verify;            /* compare this message's content with what was sent */
    long long body_left;   /* get: body bytes still expected, -1 = reading the head */
    int z_on;              /* permessage-deflate agreed */
    int z_keep;            /* the server keeps its context: zin lives across messages */
    int z_bits;            /* server_max_window_bits agreed (15 when absent) */
    int msg_z;             /* the current message is compressed (RSV1 on its first frame) */
    z_stream *zin;         /* this connection's inflater (z_keep, or a fragmented message) */
} conn_t;

static int g_mode, g_epfd, g_nconns, g_size, g_binary;
static conn_t *g_conns;
static const char *g_host, *g_path;
static int g_port;
static struct sockaddr_in g_addr;
static unsigned char *g_payload;       /* the unmasked message, for verification */
static unsigned char *g_frame;         /* the masked frame sent for each round trip */
static size_t g_framelen;
static unsigned char *g_req;           /* get: the request */
static size_t g_reqlen;
static long long g_round_trips, g_errors, g_bytes, g_responses;
static int g_open, g_pending, g_started;
static double g_push_last, g_push_t0;
static int g_push_active, g_push_count, g_push_bad;
static unsigned long g_msgs_started;
static const char *g_first_error;
static char g_errbuf[256];
static int g_deflate;                  /* --deflate: offer, compress, inflate (RFC 7692) */
static int g_push_size;                /* push: JSON size asked for in this batch, 0: stamp */
static int g_go_count;                 /* push --wait: pushes in this batch, 0: PUSHES */
static long long g_zmsgs;              /* compressed messages received (and inflated) */
static z_stream g_zshared;             /* inflater for single-frame messages, no context kept */
static int g_zshared_bits;             /* its window, 0 before first use */
static unsigned char *g_zout;          /* inflate output scratch */
#define ZOUT_SIZE (256 * 1024)
static const unsigned char TAIL[4] = {0x00, 0x00, 0xff, 0xff}; /* RFC 7692 7.2.2 */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *msg) {
    fprintf(stderr, "wsload: %s\n", msg);
    exit(2);
}

/* ---- SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept (RFC 6455 4.2.2) ---- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *data, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *msg = calloc(total, 1);
    if (!msg) die("out of memory");
    memcpy(msg, data, len);
    msg[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) msg[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)msg[off + 4 * i] << 24 | (uint32_t)msg[off + 4 * i + 1] << 16 |
                   (uint32_t)msg[off + 4 * i + 2] << 8 | msg[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(msg);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = 0;
}

static void random_bytes(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("getrandom failed");
        }
        got += (size_t)r;
    }
}

/* Build a masked client frame (RFC 6455 5.2, 5.3: every client frame is masked) with first
 * byte b0 (FIN, RSV1, opcode). */
static unsigned char *make_frame_b0(int b0, const unsigned char *payload, size_t len,
                                    size_t *outlen) {
    unsigned char *f = malloc(len + 14);
    if (!f) die("out of memory");
    size_t h = 0;
    f[h++] = (unsigned char)b0;
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4];
    random_bytes(mask, 4);
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) f[h + i] = payload[i] ^ mask[i & 3];
    *outlen = h + len;
    return f;
}

static unsigned char *make_frame(int opcode, const unsigned char *payload, size_t len,
                                 size_t *outlen) {
    return make_frame_b0(0x80 | opcode, payload, len, outlen);
}

/* RFC 7692 7.2.1: DEFLATE with a sync flush, its 00 00 ff ff tail removed; a fresh
 * compressor, so the message refers to nothing before it (no context takeover). */
static unsigned char *deflate_message(const unsigned char *in, size_t len, int bits,
                                      size_t *outlen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    /* zlib cannot compress raw DEFLATE with an 8-bit window; 9 never reaches 256 back */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2 failed");
    size_t cap = deflateBound(&z, (uLong)len) + 16;
    unsigned char *out = malloc(cap);
    if (!out) die("out of memory");
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in) die("deflate failed");
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (n < 4 || memcmp(out + n - 4, TAIL, 4) != 0) die("sync flush without its tail");
    *outlen = n - 4;
    return out;
}

/* A JSON text of exactly `size` bytes that compresses like a dashboard's (~4-5x). */
static unsigned char *json_payload(size_t size) {
    unsigned char *out = malloc(size + 64);
    if (!out) die("out of memory");
    size_t n = 0;
    out[n++] = '[';
    for (int i = 0;; i++) {
        char item[64];
        int k = snprintf(item, sizeof item, "%s{\"id\":%d,\"temp\":%d.%d,\"ok\":true}",
                         i ? "," : "", i, 18 + (i * 37) % 9, (i * 53) % 10);
        if (n + (size_t)k + 1 > size) break;
        memcpy(out + n, item, (size_t)k);
        n += (size_t)k;
    }
    while (n + 1 < size) out[n++] = ' ';
    out[n++] = ']';
    return out;
}

/* ---- connection plumbing ---- */

static void set_events(conn_t *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - g_conns)};
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

static void conn_fail(conn_t *c, const char *why) {
    if (c->state == ST_DEAD) return;
    if (!g_first_error) {
        if (errno)
            snprintf(g_errbuf, sizeof g_errbuf, "%s (%s)", why, strerror(errno));
        else
            snprintf(g_errbuf, sizeof g_errbuf, "%s", why);
        g_first_error = g_errbuf;
    }
    if (c->state != ST_OPEN) g_pending--;
    else g_open--;
    c->state = ST_DEAD;
    g_errors++;
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->own_out);
    c->own_out = NULL;
}

/* Queue `data` for sending and write as much as the socket takes now.  `data` must outlive
 * the write unless `transient`, in which case an unwritten tail is copied. */
static void conn_send_ex(conn_t *c, const unsigned char *data, size_t len, int transient) {
    if (c->outoff < c->outlen) {
        /* Only pongs can overlap a pending write; they are rare, so copy both. */
        size_t rest = c->outlen - c->outoff;
        unsigned char *buf = malloc(rest + len);
        if (!buf) die("out of memory");
        memcpy(buf, c->out + c->outoff, rest);
        memcpy(buf + rest, data, len);
        free(c->own_out);
        c->own_out = buf;
        c->out = buf;
        c->outlen = rest + len;
        c->outoff = 0;
    } else {
        c->out = data;
        c->outlen = len;
        c->outoff = 0;
    }
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            conn_fail(c, "send failed");
            return;
        }
        c->outoff += (size_t)n;
    }
    if (transient && c->outoff < c->outlen && c->out != c->own_out) {
        size_t rest = c->outlen - c->outoff;
        unsigned char *buf = malloc(rest);
        if (!buf) die("out of memory");
        memcpy(buf, c->out + c->outoff, rest);
        free(c->own_out);
        c->own_out = buf;
        c->out = buf;
        c->outlen = rest;
        c->outoff = 0;
    }
    set_events(c, c->outoff < c->outlen);
}

static void conn_send(conn_t *c, const unsigned char *data, size_t len) {
    conn_send_ex(c, data, len, 0);
}

static void conn_flush(conn_t *c) {
    const unsigned char *out = c->out;
    size_t len = c->outlen - c->outoff, off = c->outoff;
    c->outlen = c->outoff = 0;
    conn_send(c, out + off, len);
}

static void start_connect(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket() failed (RLIMIT_NOFILE too low?)");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    c->want_out = 1;
    c->rlen = 0;
    c->body_left = -1;
    g_pending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - g_conns)};
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl failed");
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS)
        conn_fail(c, "connect failed");
}

static void conn_opened(conn_t *c) {
    c->state = ST_OPEN;
    g_pending--;
    g_open++;
    if (g_mode == M_TCPHOLD) conn_send(c, (const unsigned char *)"x", 1);
    else if (g_started && (g_mode == M_ECHO || g_mode == M_TCP)) conn_send(c, g_frame, g_framelen);
    else if (g_started && g_mode == M_GET) conn_send(c, g_req, g_reqlen);
}

static void send_handshake(conn_t *c) {
    unsigned char key[16];
    char key64[32], buf[1024];
    random_bytes(key, sizeof key);
    base64(key, sizeof key, key64);
    /* RFC 6455 4.2.2: accept = base64(SHA-1(key + GUID)) */
    char cat[96];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
    unsigned char digest[20];
    sha1((unsigned char *)cat, strlen(cat), digest);
    base64(digest, 20, c->accept);
    int n = snprintf(buf, sizeof buf,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     g_path, g_host, g_port, key64,
                     g_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "client_max_window_bits\r\n" : "");
    c->own_out = malloc((size_t)n);
    if (!c->own_out) die("out of memory");
    memcpy(c->own_out, buf, (size_t)n);
    c->state = ST_HANDSHAKE;
    conn_send(c, c->own_out, (size_t)n);
}

/* Find the end of an HTTP head in rbuf; returns its length or 0. */
static size_t head_end(conn_t *c) {
    if (c->rlen < 4) return 0;
    unsigned char *p = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    return p ? (size_t)(p - c->rbuf) + 4 : 0;
}

/* Value of header `name` inside the head (case-insensitive), copied into out. */
static int find_header(const char *head, size_t len, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (vl >= cap) vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return 1;
        }
        p = eol + 2;
    }
    return 0;
}

/* The echo frame, compressed with the first client window a server allowed. */
static int g_frame_bits;

static void build_echo_frame(int bits) {
    size_t zl;
    unsigned char *z = deflate_message(g_payload, (size_t)g_size, bits, &zl);
    /* RFC 7692 6: RSV1 marks a compressed message */
    g_frame = make_frame_b0(0xC0 | (g_binary ? 0x2 : 0x1), z, zl, &g_framelen);
    free(z);
    g_frame_bits = bits;
}

/* The parameter `name` of a permessage-deflate response: -1 absent, 0 without a value. */
static int ext_param(const char *ext, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = strstr(ext, name); p; p = strstr(p + 1, name)) {
        char before = p == ext ? ';' : p[-1];
        char after = p[nl];
        if (before != ';' && before != ' ' && before != '\t') continue;
        if (after == '=') return atoi(p + nl + 1 + (p[nl + 1] == '"'));
        if (after == 0 || after == ';' || after == ' ' || after == ',') return 0;
    }
    return -1;
}

/* RFC 7692 5, 7.1: read the server's answer to our offer; 0 (connection failed) if none. */
static int accept_deflate(conn_t *c, size_t he) {
    char ext[512];
    errno = 0;
    if (!find_header((char *)c->rbuf, he, "Sec-WebSocket-Extensions", ext, sizeof ext) ||
        strncmp(ext, "permessage-deflate", 18) != 0) {
        conn_fail(c, "the server did not agree to permessage-deflate");
        return 0;
    }
    int sbits = ext_param(ext, "server_max_window_bits");
    int cbits = ext_param(ext, "client_max_window_bits");
    c->z_on = 1;
    c->z_keep = ext_param(ext, "server_no_context_takeover") < 0;
    c->z_bits = sbits > 0 ? sbits : 15;
    if (cbits <= 0) cbits = 15;
    if (g_mode == M_ECHO) {
        if (!g_frame) build_echo_frame(cbits);
        else if (cbits < g_frame_bits) { conn_fail(c, "client windows differ"); return 0; }
    }
    return 1;
}

static void consume(conn_t *c, size_t n) {
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

static void on_message_done(conn_t *c) {
    if (g_mode == M_ECHO) {
        if (c->msg_got != (size_t)g_size) {
            conn_fail(c, "echoed message has the wrong length");
            return;
        }
        g_round_trips++;
        conn_send(c, g_frame, g_framelen);
    } else if (g_mode == M_PUSH && g_push_active) {
        if (c->got_push) g_push_bad++;
        c->got_push = 1;
        g_push_count++;
        g_push_last = now();
    }
}

/* A piece of message data (inflated if it was compressed): check it; 0 if the connection
 * failed. */
static int on_data(conn_t *c, const unsigned char *p, size_t len) {
    if (g_mode == M_ECHO) {
        if (c->msg_got + len > (size_t)g_size ||
            (c->verify && memcmp(p, g_payload + c->msg_got, len) != 0)) {
            errno = 0;
            conn_fail(c, "echoed payload differs from what was sent");
            return 0;
        }
    } else if (g_mode == M_PUSH && c->msg_got == 0 && len && g_push_active) {
        /* the time the server took before pushing: repr(t) or {"t":t,...} */
        char tmp[64];
        size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
        memcpy(tmp, p, n);
        tmp[n] = 0;
        const char *num = strstr(tmp, "\"t\":");
        double t0 = strtod(num ? num + 4 : tmp, NULL);
        if (g_push_t0 == 0) g_push_t0 = t0;
        else if (t0 != g_push_t0) g_push_bad++;
    }
    c->msg_got += len;
    return 1;
}

/* RFC 7692 7.2.2: inflate a compressed frame's payload (and 00 00 ff ff after the last),
 * checking the output as it comes; 0 if the connection failed. */
static int inflate_data(conn_t *c, const unsigned char *p, size_t len, int first, int fin) {
    z_stream *z;
    if (first) g_zmsgs++;
    if (!c->z_keep && first && fin) { /* a whole message, no context: the shared inflater */
        z = &g_zshared;
        if (g_zshared_bits != c->z_bits) {
            if (g_zshared_bits) inflateEnd(z);
            memset(z, 0, sizeof *z);
            if (inflateInit2(z, -c->z_bits) != Z_OK) die("inflateInit2 failed");
            g_zshared_bits = c->z_bits;
        } else if (inflateReset(z) != Z_OK) {
            die("inflateReset failed");
        }
    } else {
        if (!c->zin) {
            c->zin = calloc(1, sizeof(z_stream));
            if (!c->zin || inflateInit2(c->zin, -c->z_bits) != Z_OK) die("inflateInit2 failed");
        }
        z = c->zin;
    }
    int ended = 0;
    for (int part = 0; part < 2; part++) {
        if (part) {
            if (!fin) break;
            p = TAIL;
            len = 4;
        }
        z->next_in = (unsigned char *)p;
        z->avail_in = (uInt)len;
        do {
            z->next_out = g_zout;
            z->avail_out = ZOUT_SIZE;
            int r = inflate(z, Z_SYNC_FLUSH);
            if (r == Z_STREAM_END) ended = 1; /* RFC 7692 7.2.3.4: a final block */
            if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
                errno = 0;
                conn_fail(c, "compressed message does not inflate");
                return 0;
            }
            size_t n = ZOUT_SIZE - z->avail_out;
            if (n && !on_data(c, g_zout, n)) return 0;
            if (r == Z_STREAM_END || (n == 0 && r == Z_BUF_ERROR)) break;
        } while (z->avail_in || z->avail_out == 0);
    }
    if (ended && z == c->zin && c->z_keep && inflateReset(z) != Z_OK) die("inflateReset failed");
    if (fin && z == c->zin && !c->z_keep) { /* a fragmented message without context */
        inflateEnd(c->zin);
        free(c->zin);
        c->zin = NULL;
    }
    return 1;
}

static void process_ws(conn_t *c) {
    size_t off = 0;
    while (c->rlen - off >= 2 && c->state == ST_OPEN) {
        unsigned char *f = c->rbuf + off;
        size_t avail = c->rlen - off, h = 2;
        int fin = f[0] & 0x80, op = f[0] & 0x0f;
        if (f[1] & 0x80) { conn_fail(c, "server frame is masked"); return; } /* RFC 6455 5.1 */
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
            h = 10;
        }
        if (h + len > c->rcap) { conn_fail(c, "server frame larger than expected"); return; }
        if (avail < h + len) break;
        unsigned char *p = f + h;
        off += h + (size_t)len;
        if (op >= 8) {
            if (op == 0x9) { /* RFC 6455 5.5.2: answer a ping with a pong */
                size_t fl;
                unsigned char *pong = make_frame(0xA, p, (size_t)len, &fl);
                conn_send_ex(c, pong, fl, 1);
                free(pong);
            } else if (op == 0x8) {
                errno = 0;
                conn_fail(c, "server closed the WebSocket");
                return;
            }
            continue;
        }
        errno = 0;
        /* RFC 6455 5.2: RSV2/RSV3 are never set; RFC 7692 6.1: RSV1 only on the first
         * frame of a data message, and only with permessage-deflate agreed */
        if (f[0] & 0x30 || (f[0] & 0x40 && (op == 0 || !c->z_on))) {
            conn_fail(c, "reserved bit set");
            return;
        }
        if (op != 0) {
            if (c->in_msg) { conn_fail(c, "new message inside a fragmented one"); return; }
            c->msg_got = 0;
            c->in_msg = 1;
            c->msg_z = (f[0] & 0x40) != 0;
            /* 64 KiB messages: check one in 16 so memcmp does not load the generator */
            c->verify = g_size <= 4096 || (g_msgs_started++ & 15) == 0;
            if (g_mode == M_ECHO && op != (g_binary ? 0x2 : 0x1)) {
                conn_fail(c, "echo came back with another opcode");
                return;
            }
        } else if (!c->in_msg) {
            conn_fail(c, "continuation frame outside a message");
            return;
        }
        if (c->msg_z ? !inflate_data(c, p, (size_t)len, op != 0, fin)
                     : !on_data(c, p, (size_t)len))
            return;
        if (fin) {
            c->in_msg = 0;
            if (g_mode == M_PUSH && g_push_active && g_push_size && c->msg_got != (size_t)g_push_size)
                g_push_bad++;
            on_message_done(c);
        }
    }
    if (c->state != ST_DEAD && off) consume(c, off);
}

static void process_get(conn_t *c) {
    for (;;) {
        if (c->body_left < 0) {
            size_t he = head_end(c);
            if (!he) {
                if (c->rlen == c->rcap) conn_fail(c, "response head too large");
                return;
            }
            char cl[32];
            errno = 0;
            if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 200", 12) != 0) {
                conn_fail(c, "status is not HTTP/1.1 200");
                return;
            }
            if (!find_header((char *)c->rbuf, he, "Content-Length", cl, sizeof cl)) {
                conn_fail(c, "no Content-Length");
                return;
            }
            c->body_left = atoll(cl);
            consume(c, he);
        }
        size_t take = c->rlen < (size_t)c->body_left ? c->rlen : (size_t)c->body_left;
        g_bytes += (long long)take;
        c->body_left -= (long long)take;
        c->rlen -= take;
        if (c->rlen) memmove(c->rbuf, c->rbuf + take, c->rlen);
        if (c->body_left > 0) return;
        c->body_left = -1;
        g_responses++;
        conn_send(c, g_req, g_reqlen);
        if (c->state != ST_OPEN || c->rlen == 0) return;
    }
}

static void on_readable(conn_t *c) {
    if (c->rlen == c->rcap) { conn_fail(c, "receive buffer full"); return; }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        conn_fail(c, "recv failed");
        return;
    }
    if (n == 0) {
        errno = 0;
        conn_fail(c, c->state == ST_OPEN ? "server closed the connection"
                                         : "server closed the connection during the handshake");
        return;
    }
    c->rlen += (size_t)n;
    if (c->state == ST_HANDSHAKE) {
        size_t he = head_end(c);
        if (!he) return;
        char acc[64];
        errno = 0;
        if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
            conn_fail(c, "handshake response is not 101");
            return;
        }
        if (!find_header((char *)c->rbuf, he, "Sec-WebSocket-Accept", acc, sizeof acc) ||
            strcmp(acc, c->accept) != 0) {
            conn_fail(c, "bad Sec-WebSocket-Accept");
            return;
        }
        if (g_deflate && !accept_deflate(c, he)) return;
        consume(c, he);
        free(c->own_out);
        c->own_out = NULL;
        conn_opened(c);
        if (c->state == ST_OPEN && c->rlen) process_ws(c);
        return;
    }
    if (c->state != ST_OPEN) return;
    switch (g_mode) {
    case M_TCP:
        c->msg_got += (size_t)n;
        if (c->msg_got > (size_t)g_size) { conn_fail(c, "echoed more than was sent"); return; }
        if (c->msg_got == (size_t)g_size) {
            if (memcmp(c->rbuf, g_payload, (size_t)g_size) != 0) {
                errno = 0;
                conn_fail(c, "echoed data differs from what was sent");
                return;
            }
            c->msg_got = 0;
            c->rlen = 0;
            g_round_trips++;
            if (g_started) conn_send(c, g_frame, g_framelen);
        }
        break;
    case M_TCPHOLD:
        c->got_push = 1;
        c->rlen = 0;
        break;
    case M_GET:
        process_get(c);
        break;
    default:
        process_ws(c);
    }
}

static void on_writable(conn_t *c) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            errno = err;
            conn_fail(c, "connect failed");
            return;
        }
        set_events(c, 0);
        if (g_mode == M_TCP || g_mode == M_TCPHOLD || g_mode == M_GET) conn_opened(c);
        else send_handshake(c);
        return;
    }
    if (c->outoff < c->outlen) conn_flush(c);
    else set_events(c, 0);
}

/* One epoll_wait round; returns 1 if stdin became readable. */
static int loop_once(int timeout_ms) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(g_epfd, evs, MAX_EVENTS, timeout_ms);
    int stdin_ready = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == UINT32_MAX) { stdin_ready = 1; continue; }
        conn_t *c = &g_conns[evs[i].data.u32];
        if (c->state == ST_DEAD) continue;
        if (evs[i].events & (EPOLLOUT | EPOLLERR)) on_writable(c);
        if (c->state != ST_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP))) on_readable(c);
    }
    return stdin_ready;
}

static double connect_all(void) {
    double t0 = now();
    int next = 0;
    while (next < g_nconns || g_pending > 0) {
        while (next < g_nconns && g_pending < MAX_PENDING) start_connect(&g_conns[next++]);
        loop_once(100);
        if (now() - t0 > CONNECT_TIMEOUT_S) die("timed out opening connections");
    }
    if (g_mode == M_TCPHOLD) { /* wait until every connection has echoed its byte */
        for (;;) {
            int done = 1;
            for (int i = 0; i < g_nconns; i++)
                if (g_conns[i].state == ST_OPEN && !g_conns[i].got_push) { done = 0; break; }
            if (done) break;
            loop_once(100);
            if (now() - t0 > CONNECT_TIMEOUT_S) die("timed out waiting for echoes");
        }
    }
    return now() - t0;
}

/* Service connections until a line arrives on stdin; returns 1 for "go", 0 for quit/EOF. */
static int wait_stdin(void) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    int polled = epoll_ctl(g_epfd, EPOLL_CTL_ADD, 0, &ev) == 0; /* a regular file cannot be */
    for (;;) {
        if (polled && !loop_once(1000)) continue;
        char line[64];
        size_t n = 0;
        ssize_t r;
        /* one byte at a time, so a second command stays in the pipe for the next call */
        while (n < sizeof line - 1 && (r = read(0, line + n, 1)) == 1 && line[n] != '\n') n++;
        if (polled) epoll_ctl(g_epfd, EPOLL_CTL_DEL, 0, NULL);
        line[n] = 0;
        if (strncmp(line, "go", 2) != 0) return 0;
        g_push_size = 0;
        g_go_count = 0;
        sscanf(line + 2, "%d %d", &g_push_size, &g_go_count);
        return 1;
    }
}

static void print_ready(double connect_s) {
    printf("{\"event\":\"ready\",\"conns\":%d,\"errors\":%lld,\"connect_s\":%.3f,"
           "\"cpu_s\":%.3f}\n",
           g_open, g_errors, connect_s, cpu_seconds());
    fflush(stdout);
}

static void print_tail(double t_start) {
    printf("\"errors\":%lld,\"conns\":%d,\"cpu_s\":%.3f,\"wall_s\":%.3f", g_errors, g_open,
           cpu_seconds(), now() - t_start);
    if (g_deflate) printf(",\"compressed_msgs\":%lld", g_zmsgs);
    if (g_first_error) {
        printf(",\"first_error\":\"");
        for (const char *p = g_first_error; *p; p++)
            if (*p != '"' && *p != '\\') putchar(*p);
        putchar('"');
    }
    printf("}\n");
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_push(int pushes) {
    double *ms = calloc((size_t)pushes, sizeof(double));
    double *ms_send = calloc((size_t)pushes, sizeof(double));
    size_t fl;
    char ask[32];
    int asklen = g_push_size ? snprintf(ask, sizeof ask, "push %d", g_push_size)
                             : snprintf(ask, sizeof ask, "push");
    unsigned char *frame = make_frame(0x1, (const unsigned char *)ask, (size_t)asklen, &fl);
    int done = 0;
    long long missing = 0;
    for (int k = 0; k < pushes; k++) {
        for (int i = 0; i < g_nconns; i++) g_conns[i].got_push = 0;
        g_push_count = 0;
        g_push_t0 = 0;
        g_push_last = 0;
        g_push_active = 1;
        conn_t *sender = NULL;
        for (int i = 0; i < g_nconns && !sender; i++)
            if (g_conns[i].state == ST_OPEN) sender = &g_conns[i];
        if (!sender) break;
        double t_send = now();
        conn_send(sender, frame, fl);
        while (g_push_count < g_open && now() - t_send < PUSH_TIMEOUT_S) loop_once(50);
        if (g_push_count < g_open) missing += g_open - g_push_count;
        ms[done] = (g_push_last - g_push_t0) * 1000.0;
        ms_send[done] = (g_push_last - t_send) * 1000.0;
        done++;
        double pause = now();
        g_push_active = 0; /* anything late is ignored */
        while (now() - pause < 0.2) loop_once(20);
    }
    free(frame);
    double med = 0, med_send = 0;
    printf("{\"push_ms\":[");
    for (int i = 0; i < done; i++) printf("%s%.3f", i ? "," : "", ms[i]);
    printf("],\"push_ms_from_send\":[");
    for (int i = 0; i < done; i++) printf("%s%.3f", i ? "," : "", ms_send[i]);
    if (done) {
        qsort(ms, (size_t)done, sizeof(double), cmp_double);
        qsort(ms_send, (size_t)done, sizeof(double), cmp_double);
        med = ms[done / 2];
        med_send = ms_send[done / 2];
    }
    printf("],\"push_ms_median\":%.3f,\"push_ms_from_send_median\":%.3f,\"missing\":%lld,"
           "\"bad\":%d,\"size\":%d,",
           med, med_send, missing, g_push_bad, g_push_size);
    free(ms);
    free(ms_send);
}

static void usage(void) {
    fprintf(stderr,
            "usage: wsload echo HOST PORT PATH CONNS SIZE SECONDS [text|binary] [--deflate]\n"
            "       wsload push HOST PORT PATH CONNS [PUSHES] [--wait] [--deflate]\n"
            "       wsload hold HOST PORT PATH CONNS [--deflate]\n"
            "       wsload tcp HOST PORT CONNS SIZE SECONDS\n"
            "       wsload tcphold HOST PORT CONNS\n"
            "       wsload get HOST PORT PATH CONNS SECONDS\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 5) usage();
    const char *mode = argv[1];
    double seconds = 0;
    int pushes = 5, wait = 0, a = 4;
    g_host = argv[2];
    g_port = atoi(argv[3]);
    g_path = "/";
    if (!strcmp(mode, "echo") || !strcmp(mode, "push") || !strcmp(mode, "hold") ||
        !strcmp(mode, "get")) {
        g_path = argv[a++];
    }
    if (a >= argc) usage();
    g_nconns = atoi(argv[a++]);
    if (!strcmp(mode, "echo")) {
        if (argc < a + 2) usage();
        g_mode = M_ECHO;
        g_size = atoi(argv[a++]);
        seconds = atof(argv[a++]);
        for (; a < argc; a++) {
            if (!strcmp(argv[a], "--deflate")) g_deflate = 1;
            else g_binary = !strcmp(argv[a], "binary");
        }
    } else if (!strcmp(mode, "push")) {
        g_mode = M_PUSH;
        for (; a < argc; a++) {
            if (!strcmp(argv[a], "--wait")) wait = 1;
            else if (!strcmp(argv[a], "--deflate")) g_deflate = 1;
            else pushes = atoi(argv[a]);
        }
    } else if (!strcmp(mode, "hold")) {
        g_mode = M_HOLD;
        g_deflate = a < argc && !strcmp(argv[a], "--deflate");
    } else if (!strcmp(mode, "tcp")) {
        if (argc < a + 2) usage();
        g_mode = M_TCP;
        g_size = atoi(argv[a++]);
        seconds = atof(argv[a++]);
    } else if (!strcmp(mode, "tcphold")) {
        g_mode = M_TCPHOLD;
    } else if (!strcmp(mode, "get")) {
        if (argc < a + 1) usage();
        g_mode = M_GET;
        seconds = atof(argv[a++]);
    } else {
        usage();
    }
    if (g_nconns <= 0 || pushes <= 0) usage();

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)g_nconns + 16 > rl.rlim_cur) die("RLIMIT_NOFILE is below CONNS");

    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)g_port);
    if (inet_pton(AF_INET, g_host, &g_addr.sin_addr) != 1) die("HOST must be an IPv4 address");

    size_t rcap = 4096;
    if (g_mode == M_ECHO || g_mode == M_TCP) {
        if (g_size <= 0) usage();
        if (g_deflate) {
            g_payload = json_payload((size_t)g_size); /* compressible, like a dashboard's */
        } else {
            g_payload = malloc((size_t)g_size);
            for (int i = 0; i < g_size; i++)
                g_payload[i] = (unsigned char)('a' + (i * 7 + i / 26) % 26);
        }
        if (g_mode == M_ECHO && g_deflate) {
            g_frame = NULL; /* built at the first 101, with the window the server allows */
        } else if (g_mode == M_ECHO) {
            g_frame = make_frame(g_binary ? 0x2 : 0x1, g_payload, (size_t)g_size, &g_framelen);
        } else {
            g_frame = g_payload;
            g_framelen = (size_t)g_size;
        }
        rcap = (size_t)g_size + 4096;
    } else if (g_mode == M_GET) {
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", g_path,
                         g_host, g_port);
        g_req = (unsigned char *)strdup(buf);
        g_reqlen = (size_t)n;
        rcap = 1 << 20;
    }
    if (g_deflate && !(g_zout = malloc(ZOUT_SIZE))) die("out of memory");
    g_conns = calloc((size_t)g_nconns, sizeof(conn_t));
    for (int i = 0; i < g_nconns; i++) {
        g_conns[i].rbuf = malloc(rcap);
        g_conns[i].rcap = rcap;
        if (!g_conns[i].rbuf) die("out of memory");
    }
    g_epfd = epoll_create1(EPOLL_CLOEXEC);

    double connect_s = connect_all();
    if (g_open == 0) {
        printf("{\"event\":\"failed\",");
        print_tail(now());
        return 1;
    }
    if (g_mode == M_HOLD || g_mode == M_TCPHOLD) {
        print_ready(connect_s);
        wait_stdin();
        printf("{\"event\":\"done\",");
        print_tail(now());
        return 0;
    }
    if (g_mode == M_PUSH) {
        if (!wait) {
            double t_start = now();
            run_push(pushes);
            print_tail(t_start);
            return 0;
        }
        print_ready(connect_s);
        while (wait_stdin()) { /* each "go [SIZE [COUNT]]" runs one batch of pushes */
            double t_start = now();
            run_push(g_go_count > 0 ? g_go_count : pushes);
            print_tail(t_start);
        }
        printf("{\"event\":\"done\",");
        print_tail(now());
        return 0;
    }
    /* echo, tcp, get: every connection starts its loop at the same moment */
    double cpu0 = cpu_seconds();
    double t_start = now();
    g_started = 1;
    for (int i = 0; i < g_nconns; i++) {
        conn_t *c = &g_conns[i];
        if (c->state != ST_OPEN) continue;
        if (g_mode == M_GET) conn_send(c, g_req, g_reqlen);
        else conn_send(c, g_frame, g_framelen);
    }
    double t_end = t_start + seconds;
    for (;;) {
        double t = now();
        if (t >= t_end) break;
        int ms = (int)((t_end - t) * 1000) + 1;
        loop_once(ms < 100 ? ms : 100);
    }
    double wall = now() - t_start;
    double cpu = cpu_seconds() - cpu0;
    if (g_mode == M_GET)
        printf("{\"bytes_per_s\":%.1f,\"requests_per_s\":%.2f,", (double)g_bytes / wall,
               (double)g_responses / wall);
    else
        printf("{\"round_trips_per_s\":%.1f,\"frame_bytes\":%zu,", (double)g_round_trips / wall,
               g_framelen);
    printf("\"run_cpu_s\":%.3f,\"run_wall_s\":%.3f,", cpu, wall);
    print_tail(t_start);
    return 0;
}
