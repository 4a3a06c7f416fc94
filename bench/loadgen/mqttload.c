/*
 * mqttload: an epoll MQTT 3.1.1 load generator for mgpy's broker benchmark.
 *
 * Strategy: one thread, one epoll set, non-blocking sockets, level-triggered.  Every
 * connection sends CONNECT (clean session, keepalive 0) and waits for its CONNACK; the
 * subscribers then SUBSCRIBE to one topic and wait for the SUBACK.  Incoming packets are
 * parsed in place (fixed header, Remaining Length); a QoS 1 PUBLISH is answered with a
 * PUBACK, a QoS 2 one with PUBREC (and PUBREL with PUBCOMP), all acks of one read in one
 * write.  The publisher sends the same pre-built PUBLISH (only the packet identifier
 * changes) and keeps at most WINDOW messages per subscriber outstanding:
 * published * subscribers - delivered <= WINDOW * subscribers, so a broker's per-client
 * queues never overflow and the number measured is what the broker sustains.
 *
 * Modes (results are one JSON object per line on stdout; progress goes to stderr):
 *   mqttload fanout HOST PORT SUBS QOS SIZE SECONDS WINDOW WARMUP
 *       messages delivered per second to SUBS subscribers of one topic
 *   mqttload hold HOST PORT CONNS
 *       CONNS idle clients connected (CONNACK received), then {"event":"ready"}; held until
 *       a line "quit" (or EOF) on stdin
 * Every result carries cpu_s and wall_s so the caller can check the generator's load.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define MAX_PENDING 128
#define SETUP_TIMEOUT_S 60.0
#define RBUF 65536
#define TOPIC "bench/fanout"
#define PUB_BATCH 64

enum { ST_CONNECTING, ST_CONNACK, ST_SUBACK, ST_OPEN, ST_DEAD };

typedef struct {
    int fd, state, want_out, is_pub;
    unsigned char *rbuf;
    size_t rlen;
    unsigned char *out;
    size_t outlen, outoff, outcap;
} conn_t;

static size_t g_rbufsz = RBUF;
static int g_epfd, g_n, g_qos, g_size, g_open, g_pending, g_started;
static conn_t *g_conns;
static struct sockaddr_in g_addr;
static long long g_delivered, g_published, g_errors;
static unsigned short g_pid = 1;
static unsigned char g_pubpkt[512];
static size_t g_publen, g_pidoff;
static const char *g_first_error = "";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *msg) {
    fprintf(stderr, "mqttload: %s: %s\n", msg, strerror(errno));
    exit(2);
}

static void fail(conn_t *c, const char *why) {
    if (c->state == ST_DEAD) return;
    if (!g_errors) g_first_error = why;
    g_errors++;
    c->state = ST_DEAD;
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void set_out(conn_t *c, int on) {
    if (c->want_out == on || c->state == ST_DEAD) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void flush(conn_t *c) {
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            fail(c, "send failed");
            return;
        }
        c->outoff += (size_t)n;
    }
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    set_out(c, c->outlen > 0);
}

static void queue(conn_t *c, const unsigned char *data, size_t n) {
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap * 2 : 4096;
        while (cap < c->outlen + n) cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out) die("realloc");
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, data, n);
    c->outlen += n;
}

static size_t put_str(unsigned char *p, const char *s) {
    size_t n = strlen(s);
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

static size_t put_len(unsigned char *p, size_t n) {
    size_t i = 0;
    do {
        unsigned char b = n & 0x7f;
        n >>= 7;
        p[i++] = b | (n ? 0x80 : 0);
    } while (n);
    return i;
}

static void send_connect(conn_t *c, int idx) {
    unsigned char body[64], pkt[80];
    char id[32];
    snprintf(id, sizeof id, "%s%d", c->is_pub ? "pub" : "c", idx);
    size_t n = put_str(body, "MQTT");
    body[n++] = 4;    /* 3.1.1 */
    body[n++] = 0x02; /* clean session */
    body[n++] = 0;    /* keepalive 0 (off) */
    body[n++] = 0;
    n += put_str(body + n, id);
    pkt[0] = 0x10;
    size_t h = 1 + put_len(pkt + 1, n);
    memcpy(pkt + h, body, n);
    queue(c, pkt, h + n);
}

static void send_subscribe(conn_t *c) {
    unsigned char body[64], pkt[80];
    body[0] = 0;
    body[1] = 1; /* packet id 1 */
    size_t n = 2 + put_str(body + 2, TOPIC);
    body[n++] = (unsigned char)g_qos;
    pkt[0] = 0x82;
    size_t h = 1 + put_len(pkt + 1, n);
    memcpy(pkt + h, body, n);
    queue(c, pkt, h + n);
}

static void build_publish(void) {
    unsigned char body[400];
    size_t n = put_str(body, TOPIC);
    g_pidoff = n;
    if (g_qos) n += 2;
    memset(body + n, 'x', (size_t)g_size);
    n += (size_t)g_size;
    g_pubpkt[0] = (unsigned char)(0x30 | (g_qos << 1));
    size_t h = 1 + put_len(g_pubpkt + 1, n);
    memcpy(g_pubpkt + h, body, n);
    g_pidoff += h;
    g_publen = h + n;
}

static void ack(conn_t *c, unsigned char type, unsigned char b1, unsigned char b2) {
    unsigned char a[4] = {type, 2, b1, b2};
    queue(c, a, 4);
}

/* one whole packet starting at p (type byte), body of blen bytes at b */
static void on_packet(conn_t *c, const unsigned char *p, const unsigned char *b, size_t blen) {
    unsigned type = p[0] >> 4;
    if (type == 2) { /* CONNACK */
        if (blen < 2 || b[1] != 0) { fail(c, "connection refused"); return; }
        if (c->state == ST_CONNACK) {
            g_pending--;
            if (c->is_pub || g_qos < 0) {
                c->state = ST_OPEN;
                g_open++;
            } else {
                c->state = ST_SUBACK;
                send_subscribe(c);
            }
        }
    } else if (type == 9) { /* SUBACK */
        if (blen < 3 || b[2] >= 0x80) { fail(c, "subscription refused"); return; }
        c->state = ST_OPEN;
        g_open++;
    } else if (type == 3) { /* PUBLISH */
        unsigned qos = (p[0] >> 1) & 3;
        size_t tl = ((size_t)b[0] << 8) | b[1];
        if (qos == 1) ack(c, 0x40, b[2 + tl], b[3 + tl]);
        else if (qos == 2) ack(c, 0x50, b[2 + tl], b[3 + tl]);
        if (g_started) g_delivered++;
    } else if (type == 6) { /* PUBREL */
        ack(c, 0x70, b[0], b[1]);
    } else if (type == 5) { /* PUBREC (publisher, QoS 2) */
        ack(c, 0x62, b[0], b[1]);
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, g_rbufsz - c->rlen, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            fail(c, "recv failed");
            return;
        }
        if (n == 0) { fail(c, "closed by the server"); return; }
        c->rlen += (size_t)n;
        size_t off = 0;
        while (c->rlen - off >= 2) {
            size_t len = 0, i = 1;
            int shift = 0, complete = 0;
            while (off + i < c->rlen && i <= 4) {
                unsigned char b = c->rbuf[off + i++];
                len |= (size_t)(b & 0x7f) << shift;
                shift += 7;
                if (!(b & 0x80)) { complete = 1; break; }
            }
            if (!complete || off + i + len > c->rlen) break;
            on_packet(c, c->rbuf + off, c->rbuf + off + i, len);
            if (c->state == ST_DEAD) return;
            off += i + len;
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        if ((size_t)n < g_rbufsz / 2) break;
    }
    if (c->outlen) flush(c);
}

static void start_conn(int i) {
    conn_t *c = &g_conns[i];
    c->rbuf = malloc(g_rbufsz);
    if (!c->rbuf) die("malloc");
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev);
    g_pending++;
}

static void on_event(conn_t *c, uint32_t events, int idx) {
    if (c->state == ST_DEAD) return;
    if (events & (EPOLLERR | EPOLLHUP) && c->state == ST_CONNECTING) {
        fail(c, "connect failed");
        return;
    }
    if (c->state == ST_CONNECTING && events & EPOLLOUT) {
        c->state = ST_CONNACK;
        send_connect(c, idx);
        flush(c);
        return;
    }
    if (events & EPOLLIN) on_readable(c);
    if (c->state != ST_DEAD && events & EPOLLOUT) flush(c);
}

static void run_once(double timeout) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(g_epfd, evs, MAX_EVENTS, (int)(timeout * 1000));
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        on_event(c, evs[i].events, (int)(c - g_conns));
    }
}

/* open g_n connections (the last is the publisher when pub) and wait until all are OPEN */
static void setup(int pub) {
    g_conns = calloc((size_t)g_n, sizeof *g_conns);
    if (!g_conns) die("calloc");
    if (pub) g_conns[g_n - 1].is_pub = 1;
    int next = 0;
    double deadline = now() + SETUP_TIMEOUT_S;
    while (g_open + g_errors < g_n) {
        while (next < g_n && g_pending < MAX_PENDING) start_conn(next++);
        run_once(0.05);
        if (now() > deadline) {
            fprintf(stderr, "mqttload: only %d of %d clients ready\n", g_open, g_n);
            exit(3);
        }
    }
}

static void publish_some(conn_t *p, int subs, long long window) {
    int k = 0;
    while (k < PUB_BATCH && (g_published + 1) * subs - g_delivered <= window * subs) {
        if (g_qos) {
            g_pubpkt[g_pidoff] = (unsigned char)(g_pid >> 8);
            g_pubpkt[g_pidoff + 1] = (unsigned char)g_pid;
            g_pid = g_pid == 65535 ? 1 : g_pid + 1;
        }
        queue(p, g_pubpkt, g_publen);
        flush(p); /* one write per message: a broker that reads one packet per wakeup
                     (mosquitto) is never starved of input */
        g_published++;
        k++;
    }
}

static int fanout(int subs, double seconds, long long window, double warmup) {
    g_n = subs + 1;
    build_publish();
    setup(1);
    if (g_errors) {
        printf("{\"mode\":\"fanout\",\"errors\":%lld,\"first_error\":\"%s\"}\n", g_errors,
               g_first_error);
        return 0;
    }
    conn_t *p = &g_conns[g_n - 1];
    g_started = 1;
    double t0 = now(), tw = t0 + warmup, tend = tw + seconds, tm = 0, c0 = 0;
    long long d0 = 0;
    while (g_errors == 0) {
        double t = now();
        if (!tm && t >= tw) {
            tm = t;
            d0 = g_delivered;
            c0 = cpu_s();
            printf("{\"event\":\"measuring\"}\n"); /* the caller starts its CPU meters */
            fflush(stdout);
        }
        if (t >= tend) break;
        publish_some(p, subs, window);
        run_once(0.01);
    }
    double wall = now() - tm;
    long long got = g_delivered - d0;
    printf("{\"mode\":\"fanout\",\"subs\":%d,\"qos\":%d,\"size\":%d,\"delivered\":%lld,"
           "\"per_s\":%.1f,\"published\":%lld,\"errors\":%lld,\"first_error\":\"%s\","
           "\"wall_s\":%.3f,\"cpu_s\":%.3f}\n",
           subs, g_qos, g_size, got, wall > 0 ? got / wall : 0.0, g_published, g_errors,
           g_first_error, wall, cpu_s() - c0);
    return 0;
}

static int hold(int conns) {
    g_n = conns;
    g_qos = -1; /* no subscription */
    g_rbufsz = 256;
    double t0 = now(), c0 = cpu_s();
    setup(0);
    printf("{\"event\":\"ready\",\"conns\":%d,\"errors\":%lld,\"first_error\":\"%s\","
           "\"wall_s\":%.3f,\"cpu_s\":%.3f}\n",
           g_open, g_errors, g_first_error, now() - t0, cpu_s() - c0);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) {
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr,
                "usage: mqttload fanout HOST PORT SUBS QOS SIZE SECONDS WINDOW WARMUP\n"
                "       mqttload hold HOST PORT CONNS\n");
        return 2;
    }
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &g_addr.sin_addr) != 1) {
        fprintf(stderr, "mqttload: bad address %s\n", argv[2]);
        return 2;
    }
    g_epfd = epoll_create1(0);
    if (g_epfd < 0) die("epoll_create1");
    if (!strcmp(argv[1], "fanout") && argc == 10) {
        g_qos = atoi(argv[5]);
        g_size = atoi(argv[6]);
        if (g_qos < 0 || g_qos > 2 || g_size < 0 || g_size > 256) {
            fprintf(stderr, "mqttload: QOS 0-2, SIZE 0-256\n");
            return 2;
        }
        return fanout(atoi(argv[4]), atof(argv[7]), atoll(argv[8]), atof(argv[9]));
    }
    if (!strcmp(argv[1], "hold")) return hold(atoi(argv[4]));
    fprintf(stderr, "mqttload: unknown mode or wrong arguments\n");
    return 2;
}
