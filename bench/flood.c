/*
 * tknock-flood: a bounded TCP SYN flood for the benchmark lab, compiled by bench/flood-sender.ts at bench time.
 *
 * It sends crafted SYNs (raw IPPROTO_RAW socket, sendmmsg batches) from spoofed sources to one destination, and
 * refuses any destination outside the lab prefixes 198.18.0.0/15 and fd18:18::/64. Every run is bounded by a
 * packet count AND a duration; both are required. Node's raw-socket addon sends one packet per call (about
 * 100k packets/s here), which is why this is C.
 *
 * Usage:
 *   tknock-flood -d DST -c MAX_PACKETS -t MAX_SECONDS [-r PPS] [-p MIN-MAX | -P PORT,PORT,...] [-s MODE] [-a SRC] [-S SEED]
 *   -s random4   (default) random IPv4 sources in 198.18.0.0/15, skipping 198.18.0.0/24 (the lab's real hosts)
 *   -s seq6      distinct IPv6 sources fd18:18::1:0:0:0 + i (i = packet number): one packet per source
 *   -s seq4      distinct IPv4 sources 198.18.1.0 + i (at most 130816 of them)
 *   -s fixed4 -a SRC   every packet from SRC (inside 198.18.0.0/15): spoofing one lab host, e.g. a client
 *   -o           ports in ascending order (MIN, MIN+1, ..., MAX, MIN, ...): a sweep of the range instead of random
 *   -u BYTES     UDP datagrams with BYTES (1..200) of random payload instead of SYNs; the first payload byte is 0x01,
 *                the version byte of an SPA v1 packet, and bytes 9..16 the current Unix time in ms (its timestamp),
 *                so a tknock daemon must look each one's random key id up, as for an attacker's forged packet
 * SIGTERM or SIGINT ends the run early, still printing the report.
 * With -r the packets are paced one by one (a batch holds only the packets already due), as hping3 -i sends them,
 * so a low rate is not a burst of 64 every 64 / PPS seconds.
 * Prints one JSON line: {"sent":N,"errors":N,"seconds":S}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define IP4_LEN 20
#define IP6_LEN 40
#define TCP_LEN 20
#define UDP_LEN 8
#define MAX_UDP_PAYLOAD 200
#define MAX_PORTS 65536
#define SEQ4_MAX 130816u /* 198.18.1.0 .. 198.19.255.255 */

static volatile sig_atomic_t stop_requested = 0;
static void request_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
  /* xorshift64*: fast and good enough to spread sources and ports */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)((p[i] << 8) | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A SYN with no options: what the knock clients' raw transport sends too. */
static void fill_tcp(uint8_t *tcp, uint16_t sport, uint16_t dport, uint32_t seq) {
  memset(tcp, 0, TCP_LEN);
  put16(tcp, sport);
  put16(tcp + 2, dport);
  put32(tcp + 4, seq);
  tcp[12] = 5 << 4; /* data offset: 5 words */
  tcp[13] = 0x02;   /* SYN */
  put16(tcp + 14, 64240);
}

static void usage(void) {
  fprintf(stderr, "usage: tknock-flood -d DST -c MAX_PACKETS -t MAX_SECONDS [-r PPS] [-p MIN-MAX | -P PORT,...] [-s random4|seq4|seq6|fixed4] [-a SRC] [-o] [-u BYTES] [-S SEED]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *dst_text = NULL;
  unsigned long long max_packets = 0;
  double max_seconds = 0, rate = 0;
  unsigned port_min = 10000, port_max = 59999;
  static uint16_t port_list[MAX_PORTS];
  unsigned port_count = 0;
  const char *mode = "random4";
  const char *fixed_src_text = NULL;
  int ordered = 0;
  int udp_payload = 0;
  int opt;
  while ((opt = getopt(argc, argv, "d:c:t:r:p:P:s:a:ou:S:")) != -1) {
    switch (opt) {
      case 'd': dst_text = optarg; break;
      case 'c': max_packets = strtoull(optarg, NULL, 10); break;
      case 't': max_seconds = atof(optarg); break;
      case 'r': rate = atof(optarg); break;
      case 'p':
        if (sscanf(optarg, "%u-%u", &port_min, &port_max) != 2 || port_min < 1 || port_max > 65535 || port_min > port_max) usage();
        break;
      case 'P': {
        char *copy = strdup(optarg), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && port_count < MAX_PORTS; tok = strtok_r(NULL, ",", &save)) {
          long p = strtol(tok, NULL, 10);
          if (p < 1 || p > 65535) usage();
          port_list[port_count++] = (uint16_t)p;
        }
        free(copy);
        break;
      }
      case 's': mode = optarg; break;
      case 'a': fixed_src_text = optarg; break;
      case 'o': ordered = 1; break;
      case 'u':
        udp_payload = atoi(optarg);
        if (udp_payload < 1 || udp_payload > MAX_UDP_PAYLOAD) usage();
        break;
      case 'S': rng_state ^= strtoull(optarg, NULL, 10) * 0x9e3779b97f4a7c15ull + 1; break;
      default: usage();
    }
  }
  /* Both bounds are mandatory: a flood that could run forever is a bug. */
  if (!dst_text || max_packets == 0 || max_seconds <= 0 || max_seconds > 120) usage();
  int v6 = strcmp(mode, "seq6") == 0;
  int fixed4 = strcmp(mode, "fixed4") == 0;
  if (!v6 && !fixed4 && strcmp(mode, "random4") != 0 && strcmp(mode, "seq4") != 0) usage();
  uint32_t fixed_src = 0;
  if (fixed4) {
    struct in_addr a;
    if (!fixed_src_text || inet_pton(AF_INET, fixed_src_text, &a) != 1 || (ntohl(a.s_addr) & 0xfffe0000u) != 0xc6120000u) {
      fprintf(stderr, "tknock-flood: -s fixed4 needs -a SRC inside 198.18.0.0/15 (the lab)\n");
      return 2;
    }
    fixed_src = ntohl(a.s_addr);
  }
  if (strcmp(mode, "seq4") == 0 && max_packets > SEQ4_MAX) {
    fprintf(stderr, "tknock-flood: seq4 has only %u distinct sources\n", SEQ4_MAX);
    return 2;
  }

  struct sockaddr_in dst4;
  struct sockaddr_in6 dst6;
  memset(&dst4, 0, sizeof dst4);
  memset(&dst6, 0, sizeof dst6);
  if (v6) {
    dst6.sin6_family = AF_INET6;
    static const uint8_t lab6[8] = {0xfd, 0x18, 0x00, 0x18, 0, 0, 0, 0};
    if (inet_pton(AF_INET6, dst_text, &dst6.sin6_addr) != 1 || memcmp(&dst6.sin6_addr, lab6, 8) != 0) {
      fprintf(stderr, "tknock-flood: destination must be inside fd18:18::/64 (the lab)\n");
      return 2;
    }
  } else {
    dst4.sin_family = AF_INET;
    if (inet_pton(AF_INET, dst_text, &dst4.sin_addr) != 1 || (ntohl(dst4.sin_addr.s_addr) & 0xfffe0000u) != 0xc6120000u) {
      fprintf(stderr, "tknock-flood: destination must be inside 198.18.0.0/15 (the lab)\n");
      return 2;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = request_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, IPPROTO_RAW); /* IPPROTO_RAW: we write the IP header */
  if (fd < 0) {
    perror("tknock-flood: socket");
    return 1;
  }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

  static uint8_t packets[BATCH][IP6_LEN + UDP_LEN + MAX_UDP_PAYLOAD];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  size_t l4len = udp_payload > 0 ? (size_t)(UDP_LEN + udp_payload) : TCP_LEN;
  uint8_t l4proto = udp_payload > 0 ? IPPROTO_UDP : IPPROTO_TCP;
  size_t plen = (v6 ? IP6_LEN : IP4_LEN) + l4len;
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = packets[i];
    iov[i].iov_len = plen;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = v6 ? (void *)&dst6 : (void *)&dst4;
    msgs[i].msg_hdr.msg_namelen = v6 ? sizeof dst6 : sizeof dst4;
  }
  uint8_t dst_bytes[16];
  memcpy(dst_bytes, v6 ? (void *)&dst6.sin6_addr : (void *)&dst4.sin_addr, v6 ? 16 : 4);

  unsigned long long sent = 0, errors = 0, index = 0;
  double start = now_seconds(), deadline = start + max_seconds;
  unsigned port_span = port_max - port_min + 1;
  while (sent < max_packets && !stop_requested) {
    double t = now_seconds();
    if (t >= deadline) break;
    if (rate > 0) {
      double due = start + (double)sent / rate;
      if (due > t) {
        double wait = due - t;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
        continue;
      }
    }
    unsigned n = BATCH;
    if (rate > 0) {
      double due = (t - start) * rate + 1 - (double)sent; /* packets whose time has come */
      if (due < n) n = due < 1 ? 1 : (unsigned)due;
    }
    if (max_packets - sent < n) n = (unsigned)(max_packets - sent);
    for (unsigned i = 0; i < n; i++, index++) {
      uint8_t *p = packets[i];
      uint64_t r = next_random();
      uint16_t dport = port_count > 0 ? port_list[r % port_count]
                       : ordered       ? (uint16_t)(port_min + (sent + i) % port_span)
                                       : (uint16_t)(port_min + (r >> 16) % port_span);
      uint16_t sport = (uint16_t)(1024 + (r >> 40) % 64000);
      uint8_t *tcp = p + (v6 ? IP6_LEN : IP4_LEN);
      if (udp_payload > 0) {
        memset(tcp, 0, UDP_LEN);
        put16(tcp, sport);
        put16(tcp + 2, dport);
        put16(tcp + 4, (uint16_t)l4len);
        uint8_t *data = tcp + UDP_LEN;
        for (int b = 0; b < udp_payload; b += 8) {
          uint64_t x = next_random();
          for (int j = 0; j < 8 && b + j < udp_payload; j++) data[b + j] = (uint8_t)(x >> (8 * j));
        }
        data[0] = 0x01;
        if (udp_payload >= 17) {
          struct timespec rt;
          clock_gettime(CLOCK_REALTIME, &rt);
          uint64_t ms = (uint64_t)rt.tv_sec * 1000u + (uint64_t)(rt.tv_nsec / 1000000);
          put32(data + 9, (uint32_t)(ms >> 32));
          put32(data + 13, (uint32_t)ms);
        }
      } else {
        fill_tcp(tcp, sport, dport, (uint32_t)(r >> 8));
      }
      uint32_t sum;
      if (v6) {
        memset(p, 0, IP6_LEN);
        p[0] = 0x60;
        put16(p + 4, (uint16_t)l4len);
        p[6] = l4proto;
        p[7] = 64;
        /* fd18:18::1:0:0:0 + index: never one of the lab's own addresses (fd18:18::1, ::2, ...) */
        static const uint8_t prefix[8] = {0xfd, 0x18, 0x00, 0x18, 0, 0, 0, 0};
        memcpy(p + 8, prefix, 8);
        uint64_t iid = 0x0001000000000000ull + index;
        for (int b = 0; b < 8; b++) p[16 + b] = (uint8_t)(iid >> (56 - 8 * b));
        memcpy(p + 24, dst_bytes, 16);
        sum = sum16(p + 8, 32, 0); /* pseudo-header: src, dst, length, next header */
        sum += (uint32_t)l4len + l4proto;
      } else {
        uint32_t src;
        if (fixed4) src = fixed_src;
        else if (strcmp(mode, "seq4") == 0) src = 0xc6120100u + (uint32_t)index;
        else src = 0xc6120100u + (uint32_t)((r >> 20) % SEQ4_MAX);
        memset(p, 0, IP4_LEN);
        p[0] = 0x45;
        put16(p + 2, (uint16_t)(IP4_LEN + l4len));
        p[8] = 64;
        p[9] = l4proto;
        put32(p + 12, src);
        memcpy(p + 16, dst_bytes, 4);
        put16(p + 10, fold(sum16(p, IP4_LEN, 0)));
        sum = sum16(p + 12, 8, 0);
        sum += (uint32_t)l4len + l4proto;
      }
      /* RFC 768: a computed UDP checksum of 0 is sent as 0xffff (0 means "none"). */
      uint16_t ck = fold(sum16(tcp, l4len, sum));
      if (udp_payload > 0) put16(tcp + 6, ck == 0 ? 0xffff : ck);
      else put16(tcp + 16, ck);
    }
    int done = sendmmsg(fd, msgs, n, 0);
    if (done < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
        errors++;
        continue; /* the same batch is rebuilt and retried; index moved on, sources stay distinct */
      }
      perror("tknock-flood: sendmmsg");
      break;
    }
    sent += (unsigned long long)done;
    if ((unsigned)done < n) errors++;
  }
  double seconds = now_seconds() - start;
  printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.3f}\n", sent, errors, seconds);
  close(fd);
  return 0;
}
