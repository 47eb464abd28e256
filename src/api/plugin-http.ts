// The plugin's calls over HTTP, on fastify: what `serve --in-process` listens with on Docker's
// socket, and what tests inject into. Under the supervisor (the default) Docker's HTTP is read by
// the supervisor (src/supervisor/front.ts) and reaches the plugin's `call` over the framed link,
// so a worker never loads this module, nor fastify.
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isDriverError } from '../errors.ts';
import { failure, requestError } from './failure.ts';
import { BODY_LIMIT, createPlugin, type ApiDeps, type Plugin } from './plugin.ts';

/** A plugin of its own, served over HTTP. */
export function createPluginApp(apiDeps: ApiDeps): FastifyInstance {
  return pluginHttp(createPlugin(apiDeps));
}

/** `plugin`'s calls Docker may make, one route each, answered as `plugin.call` answers them. */
export function pluginHttp(plugin: Plugin): FastifyInstance {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    loggerInstance: plugin.log,
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  // Docker sends no Content-Type; take every body as text and parse it per route.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  // Engines before v29.4.1 never close idle plugin connections; a server-side close can race with
  // reuse and cause Docker's empty-body retry (moby#39331). Closing after every reply avoids it.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('connection', 'close');
  });
  for (const method of plugin.methods) {
    app.post(`/${method}`, async (req: FastifyRequest, reply: FastifyReply) => {
      const r = await plugin.call(method, typeof req.body === 'string' ? req.body : '');
      return reply.code(r.status).type('application/json; charset=utf-8').send(r.body);
    });
  }
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({ Err: `ledgernet does not implement ${req.method} ${req.url}` }),
  );
  // What fails before a route runs: a body over the limit, a request fastify cannot read.
  app.setErrorHandler(async (err: unknown, req, reply) => {
    const f = failure(err, req.url, req.log, isDriverError(err) ? null : requestError(err, req.url, req.headers['content-length'], BODY_LIMIT));
    return reply.code(f.status).send(f.body);
  });
  return app;
}
