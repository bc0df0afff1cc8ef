import {
  abandonIdempotent,
  beginIdempotent,
  completeIdempotent,
  type IdempotencyDeps,
  requestFingerprint,
} from '../app/idempotency.js';
import { DomainError } from '../domain/errors.js';
import type { App } from './route.js';

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyKey?: string;
  }
}

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/**
 * `Idempotency-Key` on authenticated POSTs (DESIGN.md §6): runs after authentication and
 * validation, so a replay is only ever served to the caller who made the first request.
 */
export function registerIdempotency(app: App, deps: IdempotencyDeps): void {
  app.addHook('preHandler', async (request, reply) => {
    const header = request.headers['idempotency-key'];
    if (request.method !== 'POST' || !request.ctx || header === undefined) return;
    if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
      throw new DomainError(
        'bad_request',
        'Idempotency-Key must be 1 to 255 visible ASCII characters.',
        'Idempotency-Key',
      );
    }
    const { actor } = request.ctx;
    const fingerprint = requestFingerprint(request.method, request.url, request.body);
    const r = await beginIdempotent(deps, actor.orgId, actor.id, header, fingerprint);
    if (r.kind === 'replay') {
      return reply
        .code(r.status)
        .header('idempotent-replayed', 'true')
        .type('application/json; charset=utf-8')
        .send(r.body);
    }
    request.idempotencyKey = header;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const key = request.idempotencyKey;
    if (!key || !request.ctx) return payload;
    request.idempotencyKey = undefined;
    const orgId = request.ctx.actor.orgId;
    try {
      if (reply.statusCode >= 500) await abandonIdempotent(deps, orgId, key);
      else await completeIdempotent(deps, orgId, key, reply.statusCode, String(payload ?? ''));
    } catch (err) {
      request.log.error({ err }, 'could not record the idempotent response');
    }
    return payload;
  });
}
