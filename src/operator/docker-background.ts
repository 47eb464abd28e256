// The daemon's background helpers that talk to Docker's API: following Docker's firewall backend
// (`--firewall auto` while Docker is not up yet) and docker-sync (networks removed and
// restart-policy containers given up on while ledgernet was down, endpoints Docker abandoned;
// Docker's names, by inspect and from its event stream: docker-events.ts). Wired by main.ts.
import type { Logger } from 'pino';
import { DEFAULTS, type ServeConfig } from '../config.ts';
import type { EventStore } from '../events/index.ts';
import type { Reconciler } from '../reconciler/index.ts';
import type { DockerApi } from './docker-api.ts';
import type { DockerLink } from './docker-name.ts';
import { ConnectNamer } from './docker-events.ts';
import { DockerSync } from './docker-sync.ts';
import { recordFirewall, resolveFirewall, type switchableFirewall } from './firewall-choice.ts';

type Cleanup = () => Promise<void>;

/** With `--firewall auto` and Docker not up yet: ask it again until it answers, then switch if it says otherwise. */
export function followDockerFirewall(cfg: ServeConfig, firewall: ReturnType<typeof switchableFirewall>, reconciler: Reconciler, log: Logger): Cleanup {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const ask = async () => {
    const next = await resolveFirewall('auto', cfg.dockerSocket, cfg.stateDir);
    if (stopped) return;
    if (next.unsure) {
      timer = setTimeout(() => void ask(), 2_000);
      return;
    }
    if (next.backend.name === firewall.name) return;
    log.info({ firewall: next.backend.name, why: next.why }, `firewall backend: switching to ${next.backend.name}`);
    firewall.use(next.backend);
    await recordFirewall(cfg.stateDir, next.backend);
    await reconciler.requestPass('firewall').catch((e: unknown) => log.error({ err: e }, 'reconcile after switching the firewall backend failed'));
  };
  timer = setTimeout(() => void ask(), 2_000);
  return async () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Docker is asked at start and on every repair tick; a network must be missing this long. */
const DOCKER_CONFIRM_MS = 2_000;

/** After Docker created a network of its own, the full pass waits this long (others made meanwhile join it), and for OTHER_GAP_MS after the last one. */
const OTHER_AFTER_MS = 100;
const OTHER_GAP_MS = 2_000;

/** Docker's names for a new network or endpoint are read once no other appeared for this long. */
const NAMES_AFTER_MS = 1_000;

/**
 * Asks Docker's API, in the background, for networks removed and restart-policy containers given
 * up on while ledgernet was down (src/docker-sync.ts). Returns the step that stops it.
 */
export function startDockerSync(cfg: ServeConfig, store: EventStore, reconciler: Reconciler, docker: { readonly api: DockerApi; readonly link: DockerLink }, log: Logger): () => Promise<void> {
  const sync = new DockerSync({
    api: docker.api,
    getState: () => store.state,
    driverName: docker.link.driverName,
    // A collected network's kernel objects go in the pass right after (names change nothing there).
    execute: async (cmd, cause) => {
      const events = await store.execute(cmd, cause);
      if (events.length > 0 && cmd.type !== 'RecordNames') await reconciler.requestPass('docker-sync');
      return events;
    },
    log: log.child({ component: 'docker-sync' }),
    confirmMs: DOCKER_CONFIRM_MS,
    abandonedGraceMs: (cfg.abandonedGraceS ?? DEFAULTS.abandonedGraceS) * 1000,
  });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // At start, then after the confirmation delay (so a network removed while ledgernet was down
  // goes within seconds), then on the repair timer; --reconcile-interval 0 asks only at start.
  const tick = async (delayMs: number | null) => {
    await sync.sync();
    if (!stopped && delayMs !== null) timer = setTimeout(() => void tick(cfg.reconcileIntervalS > 0 ? cfg.reconcileIntervalS * 1000 : null), delayMs);
  };
  void tick(DOCKER_CONFIRM_MS);
  // A new network or a joined endpoint is named soon, once Docker has stored it: after a quiet
  // moment (a burst of `docker run`s is named once, after it), one inspect per network touched,
  // not on Docker's path.
  let naming: NodeJS.Timeout | undefined;
  const touched = new Set<string>();
  store.onEvents((events) => {
    if (stopped) return;
    for (const e of events) if (e.type === 'network.created' || e.type === 'endpoint.joined') touched.add(e.data.networkId);
    if (touched.size === 0) return;
    clearTimeout(naming);
    naming = setTimeout(() => {
      const ids = [...touched];
      touched.clear();
      void sync.nameNetworks(ids);
    }, NAMES_AFTER_MS);
    naming.unref();
  });
  // Docker made a network of its own: its rules went above ledgernet's hook (Docker 20.10's bridge
  // driver inserts them at the top of FORWARD), or name a bridge to isolate; or removed one of its
  // bridge driver's, whose isolation lines ledgernet takes out. A full pass soon, not
  // at the next tick; one at a time and at most one per OTHER_GAP_MS, since it reads the whole host
  // (~140 ms at 200 networks of each driver) and Docker's calls for ledgernet wait behind it.
  let other: NodeJS.Timeout | undefined;
  let lastOther = -Infinity;
  const afterOtherNetwork = () => {
    if (other !== undefined || stopped) return;
    other = setTimeout(() => {
      lastOther = performance.now();
      void reconciler
        .requestPass('docker-network')
        .catch((e: unknown) => log.error({ err: e }, 'reconcile after Docker created a network failed'))
        .finally(() => (other = undefined));
    }, Math.max(OTHER_AFTER_MS, lastOther + OTHER_GAP_MS - performance.now()));
    other.unref();
  };
  // A container that lives less than that is named from Docker's event stream (docker-events.ts).
  const namer = new ConnectNamer({
    api: docker.api,
    getState: () => store.state,
    record: (e) => sync.recordNames({ networks: [], endpoints: [e] }),
    log: log.child({ component: 'docker-events' }),
    // (--reconcile-interval 0: no pass but for intents, as for kernel notices.)
    ...(cfg.reconcileIntervalS > 0 ? { otherNetwork: () => afterOtherNetwork() } : {}),
  });
  store.onEvents((events) => namer.onStoreEvents(events));
  namer.start();
  return async () => {
    stopped = true;
    namer.stop();
    clearTimeout(timer);
    clearTimeout(naming);
    clearTimeout(other);
    await Promise.all([sync.idle(), namer.idle()]);
  };
}
