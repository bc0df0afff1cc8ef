import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Db } from '../adapters/db/index.js';
import { stripeGateway } from '../adapters/gateway/stripe.js';
import type { Logger } from '../adapters/log/logger.js';
import type { Lookup, SsrfPolicy } from '../adapters/net/ssrf.js';
import type { Ctx } from '../app/context.js';
import type { BillingDeps } from '../app/customers.js';
import { recordDenied } from '../app/denials.js';
import type { GatewayDeps } from '../app/gateway.js';
import type { ErasureLog } from '../app/privacy.js';
import type { IdentityDeps } from '../app/sessions.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { type Actor, can } from '../domain/permissions.js';
import { createAuthenticator } from './auth.js';
import { registerCardGuard } from './card-guard.js';
import { errorBody, STATUS_BY_CODE } from './errors.js';
import { registerIdempotency } from './idempotency.js';
import type { App, RouteAuth, RouteRecord } from './route.js';
import { auditRoutes } from './routes/audit.js';
import { creditNoteRoutes } from './routes/credit-notes.js';
import { customerRoutes } from './routes/customers.js';
import { gatewayRoutes } from './routes/gateway.js';
import { invoiceRoutes } from './routes/invoices.js';
import { orgRoutes } from './routes/org.js';
import { paymentRoutes } from './routes/payments.js';
import { privacyRoutes } from './routes/privacy.js';
import { productRoutes } from './routes/products.js';
import { quoteRoutes } from './routes/quotes.js';
import { refundRoutes } from './routes/refunds.js';
import { reportRoutes } from './routes/reports.js';
import { identityRoutes } from './routes/sessions.js';
import { systemRoutes } from './routes/system.js';
import { taxRateRoutes } from './routes/tax-rates.js';
import { webhookRoutes } from './routes/webhooks.js';
import { SECURITY_HEADERS } from './security.js';

export interface Readiness {
  database: boolean;
  migrations: 'current' | 'pending' | 'unknown';
}

export interface AppDeps {
  db: Db;
  logger?: Logger;
  bodyLimitBytes?: number;
  /** Reports whether the database answers and the schema is current. */
  readiness: () => Promise<Readiness>;
  /** Resolves the caller from the request's credentials; null when there are none or they are bad. */
  authenticate?: (req: FastifyRequest) => Promise<Actor | null>;
  /** Users, sessions, API keys, MFA: registers the identity routes and, unless `authenticate` is given, the real authenticator. */
  identity?: IdentityDeps;
  /** Send HSTS (only when this process terminates TLS or sits behind a TLS proxy). */
  hsts?: boolean;
  /** A custom server (HTTPS); the default is plain HTTP. */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
  /** Customers, catalog and documents; defaults to the identity deps' cipher and clock. */
  billing?: BillingDeps;
  /** Outbound webhooks: the SSRF policy for endpoint URLs (default: https to public addresses only). */
  webhooks?: { ssrf: SsrfPolicy; lookup?: Lookup };
  /** Where erasures are remembered outside the database (re-applied after a restore). */
  erasureLog?: ErasureLog;
  /** Inbound payment-gateway webhooks: the providers (default Stripe) and env secrets of a single-org install. */
  gateway?: { providers?: GatewayDeps['providers']; envSecrets?: GatewayDeps['envSecrets'] };
  /** More route modules (later features). */
  plugins?: ((app: App, deps: AppDeps) => void)[];
}

declare module 'fastify' {
  interface FastifyRequest {
    ctx: Ctx | null;
  }
  interface FastifyInstance {
    routeTable: RouteRecord[];
  }
}

/** Builds the HTTP application without listening, so tests can drive it with inject(). */
export async function buildApp(deps: AppDeps) {
  const authenticate = deps.authenticate ?? (deps.identity ? createAuthenticator(deps.identity) : undefined);
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger | undefined,
    bodyLimit: deps.bodyLimitBytes ?? 1024 * 1024,
    genReqId: () => newId('request'),
    requestIdHeader: false,
    trustProxy: false,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true },
    ...(deps.serverFactory ? { serverFactory: deps.serverFactory } : {}),
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('ctx', null);
  app.decorate('routeTable', [] as RouteRecord[]);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Billvault API', version: '1' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'API key: Bearer bv_live_…' },
          session: { type: 'apiKey', in: 'cookie', name: '__Host-bv_session' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });

  // Deny by default: a route that does not say who may call it is a programming error.
  app.addHook('onRoute', (route) => {
    if (route.method === 'HEAD' || route.url.startsWith('/documentation')) return;
    const auth = route.config?.auth as RouteAuth | undefined;
    if (!auth || (!('public' in auth) && !('permission' in auth))) {
      throw new Error(`route ${String(route.method)} ${route.url} declares no permission (config.auth)`);
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) app.routeTable.push({ method: String(method), url: route.url, auth });
  });

  app.addHook('onRequest', async (request, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    if (deps.hsts) reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
    reply.header('x-request-id', request.id);
    const auth = request.routeOptions.config?.auth;
    if (!auth) return; // 404s for unknown routes fall through to the not-found handler
    if ('public' in auth) return;
    const actor = authenticate ? await authenticate(request) : null;
    if (!actor) throw new DomainError('unauthenticated', 'Authentication required.');
    request.ctx = {
      actor,
      meta: { requestId: request.id, ip: request.ip, userAgent: request.headers['user-agent'] ?? null },
    };
    if (!can(actor, auth.permission)) {
      await recordDenied(
        deps.db,
        request.ctx,
        auth.permission,
        `${request.method} ${request.routeOptions.url}`,
      );
      throw new DomainError('forbidden', `This action needs the ${auth.permission} permission.`);
    }
  });

  // No card number ever gets past parsing (DESIGN.md §5 Card data).
  registerCardGuard(app);

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('not_found', 'No such route.', request.id));
  });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof DomainError) {
      return reply
        .code(STATUS_BY_CODE[err.code])
        .send(errorBody(err.code, err.message, request.id, err.param));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const first = err.validation[0];
      const where = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || undefined;
      const message = first ? `${where ? `${where}: ` : ''}${first.message}` : 'Invalid request.';
      return reply.code(422).send(errorBody('validation_failed', message, request.id, where));
    }
    const e = err as { code?: string; statusCode?: number };
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .code(413)
        .send(errorBody('payload_too_large', 'The request body is too large.', request.id));
    }
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .code(415)
        .send({ error: { ...errorBody('bad_request', 'Send application/json.', request.id).error } });
    }
    if (e.statusCode === 400 || e.code?.startsWith('FST_ERR_CTP')) {
      return reply
        .code(400)
        .send(errorBody('invalid_json', 'The request body is not valid JSON.', request.id));
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('internal_error', 'Something went wrong.', request.id));
  });

  systemRoutes(app, deps);
  orgRoutes(app, deps);
  if (deps.identity) identityRoutes(app, deps.identity);
  const billing =
    deps.billing ??
    (deps.identity ? { db: deps.db, cipher: deps.identity.cipher, clock: deps.identity.clock } : undefined);
  if (billing) {
    registerIdempotency(app, billing);
    auditRoutes(app, billing);
    customerRoutes(app, billing);
    taxRateRoutes(app, billing);
    productRoutes(app, billing);
    invoiceRoutes(app, billing);
    creditNoteRoutes(app, billing);
    quoteRoutes(app, billing);
    paymentRoutes(app, billing);
    refundRoutes(app, billing);
    webhookRoutes(app, { ...billing, ...deps.webhooks });
    privacyRoutes(app, { ...billing, ...(deps.erasureLog ? { erasureLog: deps.erasureLog } : {}) });
    reportRoutes(app, billing);
    gatewayRoutes(app, {
      ...billing,
      providers: deps.gateway?.providers ?? { stripe: stripeGateway },
      ...(deps.gateway?.envSecrets ? { envSecrets: deps.gateway.envSecrets } : {}),
    });
  }
  for (const plugin of deps.plugins ?? []) plugin(app, deps);
  return app;
}

export type BuiltApp = Awaited<ReturnType<typeof buildApp>>;
