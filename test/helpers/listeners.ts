// The sockets of the host-listener tests: a Python script that holds listeners, a bound-only TCP
// socket, a connected UDP socket and established connections (the fixtures of
// fixtures/netlink/sock-diag.* were captured while it ran), and the listeners it holds.
import type { HostListener } from '../../src/kernel/host-listeners.ts';

/** Opens the sockets, prints `ready`, holds them until its stdin closes. */
export const SCRIPT = `
import socket, sys, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def tcp(fam, addr, listen=True):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6 and addr[0] == '::': s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(addr)
    if listen: s.listen(1024)
    return s
keep = [tcp(socket.AF_INET, ('127.0.0.1', 18080)), tcp(socket.AF_INET6, ('::', 18081)), tcp(socket.AF_INET6, ('::1', 18082)),
        tcp(socket.AF_INET6, ('::ffff:127.0.0.2', 18085)), tcp(socket.AF_INET, ('127.0.0.1', 18087), listen=False)]
srv = tcp(socket.AF_INET, ('0.0.0.0', 18084)); keep.append(srv)
for i in range(int(sys.argv[1])):
    c = socket.create_connection(('127.0.0.1', 18084)); a, _ = srv.accept(); keep += [c, a]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 18083)); keep.append(u)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(('::1', 18086)); keep.append(u6)
uc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); uc.connect(('127.0.0.1', 18083)); keep.append(uc)
print('ready', flush=True)
sys.stdin.read()
`;

/** What the script listens on, as `sorted` prints them. */
export const SCRIPT_LISTENERS = [
  'tcp 0.0.0.0:18084',
  'tcp 127.0.0.1:18080',
  'tcp 127.0.0.2:18085',
  'tcp [::1]:18082',
  'tcp [::]:18081',
  'udp 0.0.0.0:18083',
  'udp [::1]:18086',
];

const text = (l: HostListener) => `${l.proto} ${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`;

/** Listeners as sorted text (`tcp [::1]:18082`), to compare sets. */
export const sorted = (ls: readonly HostListener[]): string[] => ls.map(text).sort();
