// The rule shapes of Docker 20.10's bridge driver, as `iptables-save` shows them on this host
// (captured 2026-12-01 with docker0 and one user-defined network; bench/probes/datapath-diff.ts
// writes a fresh capture to /tmp/datapath-iptables.txt): per network four FORWARD rules, one rule
// in each isolation stage, a MASQUERADE and a RETURN in nat, each new network's rules inserted
// before the older ones. For bench/probes/netfilter-share.ts, which loads them in a namespace.

/** Docker's rules with only docker0 (as after `dockerd` starts). */
export const DOCKER_BASE = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
`;

export interface BridgeNet {
  readonly bridge: string;
  readonly subnet: string;
}

/** The i-th network of a population of bridge-driver networks (bridges need not exist). */
export const populationNet = (i: number): BridgeNet => ({ bridge: `br-pop${String(i).padStart(7, '0')}`, subnet: `10.240.${i}.0/24` });

/**
 * `save` (an iptables-save text holding DOCKER_BASE's docker0 rules) with Docker's rules for `nets`
 * added, `nets[0]` created first: each network's lines go before docker0's, newest first, as
 * Docker inserts them.
 */
export function withBridgeNetworks(save: string, nets: readonly BridgeNet[]): string {
  const newestFirst = [...nets].reverse();
  const before: [string, (n: BridgeNet) => string[]][] = [
    ['-A FORWARD -o docker0 -m conntrack', (n) => [`-A FORWARD -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`, `-A FORWARD -o ${n.bridge} -j DOCKER`, `-A FORWARD -i ${n.bridge} ! -o ${n.bridge} -j ACCEPT`, `-A FORWARD -i ${n.bridge} -o ${n.bridge} -j ACCEPT`]],
    ['-A DOCKER-ISOLATION-STAGE-1 -i docker0', (n) => [`-A DOCKER-ISOLATION-STAGE-1 -i ${n.bridge} ! -o ${n.bridge} -j DOCKER-ISOLATION-STAGE-2`]],
    ['-A DOCKER-ISOLATION-STAGE-2 -o docker0', (n) => [`-A DOCKER-ISOLATION-STAGE-2 -o ${n.bridge} -j DROP`]],
    ['-A POSTROUTING -s 172.17.0.0/16', (n) => [`-A POSTROUTING -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`]],
    ['-A DOCKER -i docker0 -j RETURN', (n) => [`-A DOCKER -i ${n.bridge} -j RETURN`]],
  ];
  const lines = save.split('\n');
  for (const [anchor, render] of before) {
    const at = lines.findIndex((l) => l.startsWith(anchor));
    if (at < 0) throw new Error(`withBridgeNetworks: no line starting with "${anchor}" in the ruleset`);
    lines.splice(at, 0, ...newestFirst.flatMap(render));
  }
  return lines.join('\n');
}

/** Raw-table NOTRACK for traffic inside `subnet` on `bridge` (appended as its own table). */
export const notrack = (bridge: string, subnet: string): string =>
  `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -i ${bridge} -s ${subnet} -d ${subnet} -j NOTRACK\nCOMMIT\n`;
