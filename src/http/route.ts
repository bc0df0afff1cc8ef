import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Permission } from '../domain/permissions.js';

/**
 * Every route declares who may call it: a permission, or `public: true`. A route without a
 * declaration fails to register (deny by default). The pipeline in app.ts enforces it.
 */
export type RouteAuth = { permission: Permission; stepUp?: boolean } | { public: true };

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
}

export type App = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  import('fastify').FastifyBaseLogger,
  ZodTypeProvider
>;

export interface RouteRecord {
  method: string;
  url: string;
  auth: RouteAuth;
}

export type { FastifyReply, FastifyRequest, RouteShorthandOptions };
