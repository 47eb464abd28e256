export { createPluginApp, type ApiDeps } from './plugin.ts';
export { NETWORK_OPTIONS } from './wire.ts';
