export { createPluginApp, type ApiDeps } from './plugin.ts';
