// The layer table of DESIGN.md ("Layers and who may import whom"), enforced: `npm run lint`
// (part of `npm test`) fails on an import against it. Flow: api → events → reconciler → kernel.
/** A layer may import only the folders listed for it (and itself, and node/npm packages). */
const layers = {
  kernel: ['src/errors\\.ts'],
  events: ['src/errors\\.ts'],
  reconciler: ['src/errors\\.ts', 'src/events/', 'src/kernel/'],
  api: ['src/errors\\.ts', 'src/events/', 'src/reconciler/'],
};

module.exports = {
  forbidden: [
    ...Object.entries(layers).map(([layer, allowed]) => ({
      name: `layer-${layer}`,
      comment: `src/${layer} may import only ${allowed.join(', ')} (DESIGN.md, layer table)`,
      severity: 'error',
      from: { path: `^src/${layer}/` },
      to: { path: '^src/', pathNot: [`^src/${layer}/`, ...allowed.map((a) => `^${a}`)] },
    })),
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
