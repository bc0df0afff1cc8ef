import type { FastifyRequest } from 'fastify';
import type { Ctx } from '../app/context.js';
import { DomainError } from '../domain/errors.js';

/** The authenticated context of a request; routes that declare a permission always have one. */
export function requireCtx(req: FastifyRequest): Ctx {
  if (!req.ctx) throw new DomainError('unauthenticated', 'Authentication required.');
  return req.ctx;
}
