export { createPluginApp, type ApiDeps } from './plugin.ts';
export { createControlApp, type ControlDeps } from './control.ts';
export { NETWORK_OPTIONS } from './wire.ts';
