// The layer table of DESIGN.md ("Layers and who may import whom"), enforced: `npm run lint`
// (part of `npm test`) fails on an import against it. Flow: api → events → reconciler → kernel.
// A room may import itself, node and npm packages, and only the rooms listed for it.
const ERR = 'src/errors\\.ts$';
const layers = {
  'src/kernel/': [ERR],
  'src/events/domain/': [ERR],
  'src/events/log/': [ERR, '^src/events/domain/'],
  'src/events/audit/': [ERR, '^src/events/domain/', '^src/events/log/'],
  'src/events/cluster/': [ERR, '^src/events/domain/'],
  'src/reconciler/': [ERR, '^src/events/domain/', '^src/kernel/'],
  'src/api/': [ERR, '^src/events/', '^src/reconciler/'],
  'src/supervisor/': [ERR, '^src/operator/socket\\.ts$'],
  'src/operator/': [ERR, '^src/config\\.ts$', '^src/events/', '^src/reconciler/', '^src/kernel/', '^src/api/'],
};

module.exports = {
  forbidden: [
    ...Object.entries(layers).map(([room, allowed]) => ({
      name: `layer-${room.replace(/^src\//, '').replace(/\/$/, '').replace(/\//g, '-')}`,
      comment: `${room} may import only ${allowed.join(', ')} (DESIGN.md, layer table)`,
      severity: 'error',
      from: { path: `^${room}` },
      to: { path: '^src/', pathNot: [`^${room}`, ...allowed] },
    })),
    {
      name: 'composition-root',
      comment: 'only cli.ts imports main.ts, and nothing imports cli.ts: they wire the layers, not the other way round',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli\\.ts$' },
      to: { path: '^src/(main|cli)\\.ts$' },
    },
    {
      name: 'no-circular',
      comment: 'import cycles make the layers meaningless',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-tests',
      comment: 'production code never imports test code',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
